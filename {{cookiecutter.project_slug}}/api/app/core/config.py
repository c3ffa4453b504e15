"""Settings of the API, read from the environment and the project's .env file."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from limits import parse
from pydantic import EmailStr, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# api/app/core/config.py -> the rendered project's root, where `make` writes .env.
# Anchored to this file so the API reads the same .env from any working directory;
# in a container the file is absent and the environment alone configures the API.
ENV_FILE = Path(__file__).resolve().parents[3] / ".env"

DATABASE_NAME = "{{ cookiecutter.project_slug }}"
# The worker's name, which its queues are named after.
WORKER_NAME = "{{ cookiecutter.worker_name }}"

# Values that ship in .env.example; fine on a laptop, never in a deployment.
PLACEHOLDER_PREFIX = "changethis"
MIN_SUPERUSER_PASSWORD_LENGTH = 12


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore")

    PROJECT_NAME: str = {{ cookiecutter.project_name | python_string }}
    # Strict unless told otherwise: a container started without .env is a
    # deployment, and refuses placeholder or weak secrets. .env says local.
    ENVIRONMENT: Literal["local", "test", "staging", "production"] = "production"
    API_PORT: int = 8000
    # uvicorn processes of `python -m app.serve` (the container's command).
    API_WORKERS: int = Field(default=1, gt=0)
    # Seconds the requests in flight get to finish after SIGTERM: longer than a
    # waiting endpoint can take (TASK_WAIT_TIMEOUT plus publishing), shorter than
    # the grace period compose gives before it kills the container (30 s).
    API_SHUTDOWN_TIMEOUT: int = Field(default=20, gt=0)
    # Seconds an idle keep-alive connection stays open. uvicorn's 5 s is shorter
    # than what clients and proxies keep theirs for (nginx and AWS's load
    # balancers 60 s): one that reuses a connection as uvicorn closes it gets a
    # reset, and a POST is not sent again. Longer than theirs, the client closes first.
    API_KEEP_ALIVE_TIMEOUT: int = Field(default=65, gt=0)
    # Bytes a request body may have; a larger one gets 413 before it is read.
    MAX_BODY_SIZE: int = Field(default=1024 * 1024, gt=0)
    # Browser origins allowed to call the API, comma-separated; none by default.
    CORS_ORIGINS: Annotated[list[str], NoDecode] = []

    # Signs the access tokens. No default: a forgotten key must stop the API.
    SECRET_KEY: SecretStr = SecretStr("")
    # One algorithm, and only this one is accepted when a token is decoded.
    JWT_ALGORITHM: Literal["HS256", "HS384", "HS512"] = "HS256"
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(default=30, gt=0)
    # Written into every token and required back: `iss` and `aud`.
    JWT_ISSUER: str = Field(default="{{ cookiecutter.project_slug }}", min_length=1)
    JWT_AUDIENCE: str = Field(default="{{ cookiecutter.project_slug }}-api", min_length=1)
    # Seconds an API process keeps an account it read (whether it is active, a
    # superuser): the longest a change of those takes to reach every process.
    # 0 reads the account on every request.
    ACCOUNT_CACHE_SECONDS: float = Field(default=1.0, ge=0, le=60)
    # Whether anyone may create an account through POST /auth/register.
    OPEN_REGISTRATION: bool = False
    # Logins and sign-ups one client address may try, and logins one account
    # may be tried with ("5/minute", "100/hour"...); past them, 429.
    LOGIN_ATTEMPTS_PER_ADDRESS: str = "30/minute"
    LOGIN_ATTEMPTS_PER_ACCOUNT: str = "5/minute"

    POSTGRES_DATABASE_URL: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/" + DATABASE_NAME
    # Seconds PostgreSQL may take to accept a connection, and to answer one
    # statement, before the request gets 503. A request that finds every
    # pooled connection busy waits for one as long as both together.
    POSTGRES_CONNECT_TIMEOUT: float = Field(default=3.0, gt=0)
    POSTGRES_COMMAND_TIMEOUT: float = Field(default=5.0, gt=0)
    CELERY_BROKER_URL: str = "amqp://guest:guest@127.0.0.1:5672//"
    CELERY_RESULT_BACKEND_URL: str = "redis://127.0.0.1:6379/0"
    # The worker consumes this queue; the API publishes its tasks there.
    CELERY_TASK_QUEUE: str = WORKER_NAME
    # Long tasks go to this queue, served by workers of their own, so that
    # they never hold the processes that short tasks need.
    CELERY_LONG_TASK_QUEUE: str = WORKER_NAME + "-long"
    # Channels that publish at once, and the seconds a request may spend
    # publishing (connection, channel, confirm, a chord's size) or revoking
    # before it gets 503.
    CELERY_PUBLISH_POOL_SIZE: int = Field(default=8, gt=0)
    CELERY_PUBLISH_TIMEOUT: float = Field(default=1.5, gt=0)
    # Seconds a request may spend subscribing to its results in Redis before it
    # gets 503, and seconds any connection to Redis may take to open.
    RESULT_SUBSCRIBE_TIMEOUT: float = Field(default=1.5, gt=0)
    REDIS_CONNECT_TIMEOUT: float = Field(default=2.0, gt=0)
    # Seconds Redis may take to answer one command before the request gets 503.
    REDIS_COMMAND_TIMEOUT: float = Field(default=2.0, gt=0)
    # Connections to Redis per process, one of them the result listener's; a
    # burst of commands queues for one (up to REDIS_CONNECT_TIMEOUT) instead of
    # opening a connection each.
    REDIS_POOL_SIZE: int = Field(default=32, ge=4)
    # Seconds a waiting endpoint waits before it answers 504 and revokes the task.
    TASK_WAIT_TIMEOUT: float = Field(default=10.0, gt=0)
    # Tasks one user may have in flight (sent, their end not yet known to
    # the API) across all processes; beyond, 429.
    TASKS_IN_FLIGHT_PER_USER: int = Field(default=100, gt=0)
    # Seconds an /async task may wait in the queue before workers discard it.
    TASK_EXPIRES: float = Field(default=3600.0, gt=0)
    # Seconds after a task's expiry when, if no worker stored how it ended,
    # its record says LOST: longer than the worker's TASK_TIME_LIMIT (90) plus
    # the minute it retries storing a result while Redis is away.
    TASK_LOST_AFTER: float = Field(default=300.0, gt=0)
    # Seconds each dependency gets to answer GET /health/ready.
    READINESS_TIMEOUT: float = Field(default=2.0, gt=0)

    # Count requests for GET /metrics.
    METRICS_ENABLED: bool = True

    FIRST_SUPERUSER_EMAIL: EmailStr = {{ cookiecutter.author_email | python_string }}
    FIRST_SUPERUSER_PASSWORD: SecretStr = SecretStr("")

    @field_validator("LOGIN_ATTEMPTS_PER_ADDRESS", "LOGIN_ATTEMPTS_PER_ACCOUNT")
    @classmethod
    def parse_rate(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate such as '5/minute'") from None
        return value

    @field_validator("CORS_ORIGINS", mode="before")
    @classmethod
    def split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def keep_earlier_timeouts(self) -> "Settings":
        """An .env written before these two settings existed keeps its meaning:
        the Redis subscription used CELERY_PUBLISH_TIMEOUT, and Redis
        connections READINESS_TIMEOUT."""
        given = self.model_fields_set
        if "RESULT_SUBSCRIBE_TIMEOUT" not in given and "CELERY_PUBLISH_TIMEOUT" in given:
            self.RESULT_SUBSCRIBE_TIMEOUT = self.CELERY_PUBLISH_TIMEOUT
        if "REDIS_CONNECT_TIMEOUT" not in given and "READINESS_TIMEOUT" in given:
            self.REDIS_CONNECT_TIMEOUT = self.READINESS_TIMEOUT
        return self

    @model_validator(mode="after")
    def refuse_unusable_secrets(self) -> "Settings":
        if not self.SECRET_KEY.get_secret_value():
            raise ValueError("SECRET_KEY must be set")
        if self.ENVIRONMENT in ("local", "test"):
            return self
        key = self.SECRET_KEY.get_secret_value()
        # A key at least as long as the algorithm's hash (RFC 7518, section 3.2):
        # 32 bytes for HS256.
        shortest = int(self.JWT_ALGORITHM.removeprefix("HS")) // 8
        if key.startswith(PLACEHOLDER_PREFIX) or len(key.encode()) < shortest:
            raise ValueError(
                f"SECRET_KEY must be set to a real secret of at least {shortest} bytes"
                f" for {self.JWT_ALGORITHM} when ENVIRONMENT is {self.ENVIRONMENT!r}"
            )
        password = self.FIRST_SUPERUSER_PASSWORD.get_secret_value()
        if password.startswith(PLACEHOLDER_PREFIX) or len(password) < MIN_SUPERUSER_PASSWORD_LENGTH:
            raise ValueError(
                "FIRST_SUPERUSER_PASSWORD must be set to a real password of at least"
                f" {MIN_SUPERUSER_PASSWORD_LENGTH} characters when ENVIRONMENT is"
                f" {self.ENVIRONMENT!r}"
            )
        return self


def describe(error: ValidationError) -> str:
    """One line that names each bad setting, without pydantic's URL and input echo."""
    problems = []
    for detail in error.errors():
        name = ".".join(str(part) for part in detail["loc"])
        message = detail["msg"].removeprefix("Value error, ")
        problems.append(f"{name}: {message}" if name else message)
    return "Invalid settings: " + "; ".join(problems)


@lru_cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        # Stop with one readable line instead of a traceback.
        raise SystemExit(describe(error)) from None
