"""Celery app, worker boot, and the executor that runs jobs."""
