"""The format of task messages and results, chosen when the project was rendered.

The worker's settings say the same: both ends must agree. JSON stays accepted
for Celery's own control messages.
"""

TASK_SERIALIZER = "{{ cookiecutter.task_serializer }}"
ACCEPT_CONTENT = sorted({TASK_SERIALIZER, "json"})
