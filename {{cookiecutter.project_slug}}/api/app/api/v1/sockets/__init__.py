"""WebSockets: a task's state pushed to its owner as it changes (task_socket.py)."""
