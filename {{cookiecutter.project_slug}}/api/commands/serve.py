"""`python -m commands.serve`: run uvicorn with the port, processes, keep-alive and
shutdown grace of the settings.

Going through the settings keeps these in one place, .env, for `make api` and
for the container alike.
"""

import argparse
import os
from pathlib import Path
from typing import Any

import uvicorn

from app.core.config import Settings, get_settings


def empty_metrics_directory() -> None:
    """Start multiprocess metrics from zero.

    In multiprocess mode each process writes its counters to files in
    PROMETHEUS_MULTIPROC_DIR, and /metrics sums every file there: files left by
    an earlier run would be counted again. Only those files are removed.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for leftover in path.glob("*.db"):
        leftover.unlink()


def server_options(settings: Settings) -> dict[str, Any]:
    """What uvicorn is told beyond where to listen and how many processes."""
    return {
        "timeout_graceful_shutdown": settings.API_SHUTDOWN_TIMEOUT,
        "timeout_keep_alive": settings.API_KEEP_ALIVE_TIMEOUT,
{%- if cookiecutter.use_websockets | enabled %}
        # The task WebSocket's messages are small JSON: compressing them would
        # save little, and its state costs about 50 KiB per open socket.
        "ws_per_message_deflate": False,
        # Clients send one small message, their token: refuse big ones unread.
        "ws_max_size": 64 * 1024,
{%- endif %}
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the API with uvicorn.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--reload", action="store_true", help="restart on code change")
    args = parser.parse_args()
    settings = get_settings()
    empty_metrics_directory()
    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=settings.API_PORT,
        reload=args.reload,
        # Reloading runs one process; uvicorn refuses both at once.
        workers=None if args.reload else settings.API_WORKERS,
        **server_options(settings),
    )


if __name__ == "__main__":
    main()
