"""Real processes for tests: redis-server, an S3 server, the gateway and Celery workers."""
