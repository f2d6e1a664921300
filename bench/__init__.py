"""Benchmarks: what the queue costs, and how far it scales (`make bench`, docs/benchmarks.md).

They start real parts (redis-server, the moto S3 server, gateway and worker processes) on
loopback, print and plot what they measure, and never decide pass or fail.
"""
