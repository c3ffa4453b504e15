"""Settings of the API, read from the environment and the project's .env file."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from limits import parse
from pydantic import EmailStr, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy import make_url

from taskengine import EngineConfig

# The project's root, where `make` writes .env: anchored to this file, so that any
# working directory reads the same; in a container the environment alone configures the API.
ENV_FILE = Path(__file__).resolve().parents[3] / ".env"

DATABASE_NAME = "{{ cookiecutter.project_slug }}"
# The worker's name, which its queues and tasks are named after.
WORKER_NAME = "{{ cookiecutter.worker_name }}"
# Of task messages and results, chosen at render time; the worker's settings say the same.
TASK_SERIALIZER = "{{ cookiecutter.task_serializer }}"
# RabbitMQ's type of the task queues, chosen at render time; the worker's settings say the same.
QUEUE_TYPE = "{{ cookiecutter.queue_type }}"

# Values that ship in .env.example; fine on a laptop, never in a deployment.
PLACEHOLDER_PREFIX = "changethis"
MIN_SUPERUSER_PASSWORD_LENGTH = 12


class Settings(BaseSettings):
    """Every setting, with its default; docs/settings.md says what each does."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore")

    PROJECT_NAME: str = {{ cookiecutter.project_name | python_string }}
    # A container started without .env is a deployment: strict about secrets.
    ENVIRONMENT: Literal["local", "test", "staging", "production"] = "production"
    API_PORT: int = 8000
    API_WORKERS: int = Field(default=1, gt=0)
    # Above TASK_WAIT_TIMEOUT, below compose's 30 s grace period.
    API_SHUTDOWN_TIMEOUT: int = Field(default=20, gt=0)
    # Longer than proxies and clients keep idle connections (often 60 s):
    # they close first, and never reuse one that uvicorn is closing.
    API_KEEP_ALIVE_TIMEOUT: int = Field(default=65, gt=0)
    MAX_BODY_SIZE: int = Field(default=1024 * 1024, gt=0)
    CORS_ORIGINS: Annotated[list[str], NoDecode] = []

    # No default: a forgotten key must stop the API.
    SECRET_KEY: SecretStr = SecretStr("")
    JWT_ALGORITHM: Literal["HS256", "HS384", "HS512"] = "HS256"
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(default=30, gt=0)
    JWT_ISSUER: str = Field(default="{{ cookiecutter.project_slug }}", min_length=1)
    JWT_AUDIENCE: str = Field(default="{{ cookiecutter.project_slug }}-api", min_length=1)
    # The longest a deactivation or demotion takes to reach every process.
    ACCOUNT_CACHE_SECONDS: float = Field(default=1.0, ge=0, le=60)
    OPEN_REGISTRATION: bool = False
    LOGIN_ATTEMPTS_PER_ADDRESS: str = "30/minute"
    LOGIN_ATTEMPTS_PER_ACCOUNT: str = "5/minute"

    POSTGRES_DATABASE_URL: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/" + DATABASE_NAME
    CELERY_BROKER_URL: str = "amqp://guest:guest@127.0.0.1:5672//"
    CELERY_RESULT_BACKEND_URL: str = "redis://127.0.0.1:6379/0"
    CELERY_TASK_QUEUE: str = WORKER_NAME
    # Served by workers of their own: long work never holds the short tasks' processes.
    CELERY_LONG_TASK_QUEUE: str = WORKER_NAME + "-long"
    # Seconds each service may take before the request gets 503.
    POSTGRES_TIMEOUT: float = Field(default=5.0, gt=0)
    CELERY_PUBLISH_TIMEOUT: float = Field(default=1.5, gt=0)
    REDIS_TIMEOUT: float = Field(default=2.0, gt=0)
    READINESS_TIMEOUT: float = Field(default=2.0, gt=0)
    TASK_WAIT_TIMEOUT: float = Field(default=10.0, gt=0)
    TASKS_IN_FLIGHT_PER_USER: int = Field(default=100, gt=0)
    TASK_EXPIRES: float = Field(default=3600.0, gt=0)
    # Longer than the worker's TASK_TIME_LIMIT (90) plus the minute it keeps
    # trying to store a result while Redis is away.
    TASK_LOST_AFTER: float = Field(default=300.0, gt=0)
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
    def refuse_unusable_secrets(self) -> "Settings":
        key = self.SECRET_KEY.get_secret_value()
        if not key:
            raise ValueError("SECRET_KEY must be set")
        if self.ENVIRONMENT in ("local", "test"):
            return self
        # At least as long as the algorithm's hash (RFC 7518, 3.2): 32 bytes for HS256.
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

    def engine_config(self) -> EngineConfig:
        database = make_url(self.POSTGRES_DATABASE_URL)
        return EngineConfig(
            broker_url=self.CELERY_BROKER_URL,
            redis_url=self.CELERY_RESULT_BACKEND_URL,
            # asyncpg's form of the URL: no driver in its scheme.
            postgres_url=database.set(drivername="postgresql").render_as_string(False),
            queue=self.CELERY_TASK_QUEUE,
            serializer=TASK_SERIALIZER,
            queue_type=QUEUE_TYPE,
            wait_timeout=self.TASK_WAIT_TIMEOUT,
            expires=self.TASK_EXPIRES,
            lost_after=self.TASK_LOST_AFTER,
            tasks_in_flight=self.TASKS_IN_FLIGHT_PER_USER,
            publish_timeout=self.CELERY_PUBLISH_TIMEOUT,
            redis_timeout=self.REDIS_TIMEOUT,
            postgres_timeout=self.POSTGRES_TIMEOUT,
            # Services sharing a Redis (test runs too) count apart, by database.
            key_prefix=f"taskengine:{database.database}",
        )


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
