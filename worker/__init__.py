"""Celery workers: each process holds one model and runs the stages of the jobs routed to it."""
