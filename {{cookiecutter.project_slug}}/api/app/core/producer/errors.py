"""What the producer raises when a dependency cannot be reached; the task
routes answer both with 503 (app/api/v1/private/task_errors.py)."""


class BrokerUnavailableError(Exception):
    """A message could not be handed to the broker within the deadline."""


class ResultBackendUnavailableError(Exception):
    """Redis, where the results arrive, cannot be reached."""
