"""`python -m worker.healthcheck`: exit 0 when this container's worker answers a ping.

The image's HEALTHCHECK runs it. The ping goes through the broker to this
host's node only (the worker's node name ends in the container's hostname), so
each container of a scaled worker service reports on itself.
"""

import socket
import sys

from worker.celery_app import celery_app
from worker.config import get_settings

PING_TIMEOUT = 5.0


def answers(node: str, timeout: float = PING_TIMEOUT) -> bool:
    """Whether the worker node of that name replies to a ping within the timeout."""
    return bool(celery_app.control.ping(destination=[node], timeout=timeout))


def main() -> int:
    return 0 if answers(f"{get_settings().node_name}@{socket.gethostname()}") else 1


if __name__ == "__main__":
    sys.exit(main())
