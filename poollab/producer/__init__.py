"""The producer: validates job requests and publishes them as Celery messages by task name."""
