"""The API's side of Celery: it publishes tasks by name and collects their
results without blocking the event loop or parking a thread per request.

- serialization.py: the format of messages and results, as the worker's;
- client.py: a Celery app used only to build messages and decode results;
- catalog.py: the worker's tasks, by name, as signatures;
- messages.py: Celery's canvas turned into messages, without any I/O;
- chord_sizes.py: a chord's size, captured while building, written before sending;
- publisher.py: aio-pika sends the messages, with confirms, a channel pool, a deadline;
- results.py: one Redis pub/sub subscriber per process that wakes the waiters;
- revoker.py: revoking tasks through Celery's broadcast;
- errors.py: the broker or Redis out of reach.
"""
