"""Thin Celery tasks: deserialize ids, hand off to the executor, decide retries."""
