"""`python -m worker.healthcheck`: exit 0 when this container's worker answers a ping.

The image's HEALTHCHECK runs it. The ping goes through the broker to this
host's node only (the worker's node name ends in the container's hostname), so
each container of a scaled worker service reports on itself.
"""

import socket
import sys

from worker.celery_app import celery_app
from worker.config import WORKER_NAME


def main() -> int:
    node = f"{WORKER_NAME}@{socket.gethostname()}"
    replies = celery_app.control.ping(destination=[node], timeout=5.0)
    return 0 if replies else 1


if __name__ == "__main__":
    sys.exit(main())
