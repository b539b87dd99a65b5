"""Celery workers, one per pool: ``celery -A poollab.worker.app worker -P POOL -Q POOL``."""
