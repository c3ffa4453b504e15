"""Write the Kubernetes Secret's keys from .env: `make kubernetes-secrets`.

    python3 scripts/kubernetes_secrets.py local       # overlays/local/.env.secrets
    python3 scripts/kubernetes_secrets.py production  # the same keys, on stdout

The Secret app-secrets holds what the pods need that must not be in git (the
keys of SECRET_KEYS). For a laptop cluster the URLs are made to reach the
overlay's own PostgreSQL, RabbitMQ and Redis with the passwords compose uses,
and their own settings are added. For production .env's URLs are taken as
they are: the team keeps a production .env whose URLs name the managed
services, and pipes the output into `kubectl create secret` (README.md).
Standard library only, like scripts/write_env.py.
"""

import os
import sys
import urllib.parse
from pathlib import Path

# .env read as Compose reads it, quotes and all: the same values compose gives.
from smoke_test import env_file

PROJECT = Path(__file__).resolve().parents[1]
LOCAL_SECRETS = PROJECT / "deploy/kubernetes/overlays/local/.env.secrets"
# The overlays' namespace: KEDA, in a namespace of its own, reaches the local
# RabbitMQ by its full name there.
NAMESPACE = "{{ cookiecutter.project_slug | kubernetes_name }}"

# KEDA's: where it reads the queues' lengths. Not a setting of the service.
MANAGEMENT_KEY = "RABBITMQ_MANAGEMENT_URL"
# What the API, its migrations, the workers and KEDA read from the Secret.
SECRET_KEYS = (
    "SECRET_KEY",
    "FIRST_SUPERUSER_EMAIL",
    "FIRST_SUPERUSER_PASSWORD",
    "POSTGRES_DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND_URL",
    MANAGEMENT_KEY,
)
# What the local overlay's PostgreSQL, RabbitMQ and Redis read, as in compose.
LOCAL_SERVICE_KEYS = (
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "RABBITMQ_DEFAULT_USER",
    "RABBITMQ_DEFAULT_PASS",
    "REDIS_PASSWORD",
)


def management_url(broker_url: str, host: str | None = None) -> str:
    """RabbitMQ's management API on the broker's host (or this one), with its
    account and vhost."""
    broker = urllib.parse.urlsplit(broker_url)
    account = broker.netloc.rpartition("@")[0]
    # An AMQP URL's path is "/" then the vhost ("//" is the vhost "/").
    vhost = urllib.parse.quote(urllib.parse.unquote(broker.path[1:]), safe="")
    return f"http://{account}@{host or broker.hostname}:15672/{vhost}"


def local_secrets(env: dict[str, str]) -> dict[str, str]:
    user, password = env["RABBITMQ_DEFAULT_USER"], env["RABBITMQ_DEFAULT_PASS"]
    secrets = {
        "SECRET_KEY": env["SECRET_KEY"],
        "FIRST_SUPERUSER_EMAIL": env["FIRST_SUPERUSER_EMAIL"],
        "FIRST_SUPERUSER_PASSWORD": env["FIRST_SUPERUSER_PASSWORD"],
        "POSTGRES_DATABASE_URL": (
            f"postgresql+asyncpg://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}"
            f"@postgres:5432/{env['POSTGRES_DB']}"
        ),
        "CELERY_BROKER_URL": f"amqp://{user}:{password}@rabbitmq:5672//",
        "CELERY_RESULT_BACKEND_URL": f"redis://:{env['REDIS_PASSWORD']}@redis:6379/0",
    }
    secrets[MANAGEMENT_KEY] = management_url(
        secrets["CELERY_BROKER_URL"], host=f"rabbitmq.{NAMESPACE}.svc"
    )
    return secrets | {key: env[key] for key in LOCAL_SERVICE_KEYS}


def production_secrets(env: dict[str, str]) -> dict[str, str]:
    keys = [key for key in SECRET_KEYS if key != MANAGEMENT_KEY]
    missing = [key for key in keys if not env.get(key)]
    if missing:
        raise SystemExit(f".env lacks {', '.join(missing)}")
    secrets = {key: env[key] for key in keys}
    # A managed RabbitMQ often serves its management API elsewhere (HTTPS, 443):
    # .env may say where; else the broker's host on the plugin's port.
    secrets[MANAGEMENT_KEY] = env.get(MANAGEMENT_KEY) or management_url(env["CELERY_BROKER_URL"])
    return secrets


def env_lines(secrets: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in secrets.items())


def main(argv: list[str]) -> int:
    if argv not in (["local"], ["production"]):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    env = env_file(PROJECT / ".env")
    if argv == ["production"]:
        sys.stdout.write(env_lines(production_secrets(env)))
        return 0
    # Readable by its owner only from the moment it exists, as .env is.
    LOCAL_SECRETS.unlink(missing_ok=True)
    descriptor = os.open(LOCAL_SECRETS, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(env_lines(local_secrets(env)))
    print(f"wrote {LOCAL_SECRETS.relative_to(PROJECT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
