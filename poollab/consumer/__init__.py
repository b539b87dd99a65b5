"""The asyncio consumer: a Celery-protocol worker on one event loop.

It takes Celery protocol v2 messages from its own queue in kombu's Redis layout, runs the
async variant of each job and writes results where Celery's Redis result backend reads
them, so a plain Celery client cannot tell it from a Celery worker. ``poollab consume``
runs it; :mod:`poollab.consumer.layout` names every Redis key it touches.
"""
