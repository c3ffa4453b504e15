"""Celery's settings for Flower (`celery --config celeryconfig flower`).

The workers answer Flower's remote-control questions (their tasks, pools,
queues) in the project's serializer, chosen when it was rendered; Flower must
accept it, as the API and the workers do. Events always come as JSON.
"""

TASK_SERIALIZER = "{{ cookiecutter.task_serializer }}"
accept_content = sorted({TASK_SERIALIZER, "json"})
