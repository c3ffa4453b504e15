"""Celery worker of {{ cookiecutter.project_name }}."""
