"""The API's side of Celery: it publishes tasks by name and collects their
results without blocking the event loop or parking a thread per request.

- client.py: a Celery app used only to build messages and decode results;
- catalog.py: the worker's tasks, by name, as signatures;
- messages.py: Celery's canvas turned into messages, without any I/O;
- publisher.py: aio-pika sends them, with confirms, a channel pool, a deadline;
- results.py: one Redis pub/sub subscriber per process that wakes the waiters.
"""
