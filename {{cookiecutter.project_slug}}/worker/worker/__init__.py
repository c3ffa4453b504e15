"""The Celery worker: its application, settings and tasks."""
