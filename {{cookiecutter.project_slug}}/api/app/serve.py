"""`python -m app.serve`: run uvicorn on the configured API_PORT.

Going through the settings keeps the port in one place, .env, for `make api`
and for the container alike.
"""

import argparse

import uvicorn

from app.core.config import get_settings


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the API with uvicorn.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--reload", action="store_true", help="restart on code change")
    args = parser.parse_args()
    uvicorn.run("app.main:app", host=args.host, port=get_settings().API_PORT, reload=args.reload)


if __name__ == "__main__":
    main()
