"""The API's side of Celery: it publishes tasks by name and collects their
results without blocking the event loop or parking a thread per request.

- client.py: a Celery app used only to build and publish messages;
- catalog.py: the worker's tasks, by name, as signatures;
- publisher.py: publishing through a bounded thread pool, with a deadline;
- results.py: one Redis pub/sub subscriber per process that wakes the waiters.
"""
