"""`python -m commands.healthcheck`: exit 0 when the API in this container answers.

The image's HEALTHCHECK runs it, so the image needs no curl. It asks the liveness
route on API_PORT, which the container's environment sets.
"""

import os
import sys
import urllib.request

# A proxy set in the container's environment must not stand between the probe
# and its own container.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def main() -> int:
    url = f"http://127.0.0.1:{os.environ.get('API_PORT', '8000')}/api/v1/health"
    try:
        with DIRECT.open(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
