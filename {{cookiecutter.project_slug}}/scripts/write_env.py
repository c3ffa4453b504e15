"""Write .env from .env.example, each placeholder secret replaced by a fresh one.

`make env` runs it, and so did the template when it rendered the project. An
existing .env is left as it is: it may hold the only copy of a password that a
database volume was created with. Standard library only, so that it runs
before any virtual environment exists (a fresh clone, a CI runner).
"""

import os
import re
import secrets
import sys
from pathlib import Path

# A placeholder of .env.example stands for a secret; where it appears twice (a
# password, and the URL that carries it) both get the same one. The secrets are
# URL-safe, so a secret can sit inside a connection URL as it is.
PLACEHOLDER = re.compile(r"changethis-[a-z0-9-]+")


def write_env(project: Path) -> bool:
    """Write project/.env unless it exists; whether it was written."""
    env = project / ".env"
    if env.exists():
        return False
    text = (project / ".env.example").read_text()
    fresh = {placeholder: secrets.token_urlsafe(32) for placeholder in PLACEHOLDER.findall(text)}
    text = PLACEHOLDER.sub(lambda match: fresh[match.group()], text)
    # Readable by its owner only from the moment it exists, not after a chmod.
    descriptor = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    return True


def main() -> int:
    project = Path(__file__).resolve().parents[1]
    if write_env(project):
        print(f"wrote {project / '.env'} with fresh secrets")
    else:
        print(f"kept the existing {project / '.env'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
