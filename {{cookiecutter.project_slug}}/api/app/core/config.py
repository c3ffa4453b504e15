"""Settings of the API, read from the environment and the project's .env file."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# api/app/core/config.py -> the rendered project's root, where `make` writes .env.
# Anchored to this file so the API reads the same .env from any working directory;
# in a container the file is absent and the environment alone configures the API.
ENV_FILE = Path(__file__).resolve().parents[3] / ".env"

DATABASE_NAME = "{{ cookiecutter.project_slug }}"

# Values that ship in .env.example; fine on a laptop, never in a deployment.
PLACEHOLDER_PREFIX = "changethis"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore")

    PROJECT_NAME: str = {{ cookiecutter.project_name | tojson }}
    ENVIRONMENT: Literal["local", "test", "staging", "production"] = "local"
    API_PORT: int = 8000
    SECRET_KEY: SecretStr = SecretStr("")

    POSTGRES_DATABASE_URL: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/" + DATABASE_NAME
    CELERY_BROKER_URL: str = "amqp://guest:guest@127.0.0.1:5672//"
    CELERY_RESULT_BACKEND_URL: str = "redis://127.0.0.1:6379/0"
    # The worker consumes this queue; the API publishes its tasks there.
    CELERY_TASK_QUEUE: str = "{{ cookiecutter.worker_name }}"

    FIRST_SUPERUSER_EMAIL: str = {{ cookiecutter.author_email | tojson }}
    FIRST_SUPERUSER_PASSWORD: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def refuse_placeholder_secrets(self) -> "Settings":
        if self.ENVIRONMENT in ("local", "test"):
            return self
        for name in ("SECRET_KEY", "FIRST_SUPERUSER_PASSWORD"):
            value = getattr(self, name).get_secret_value()
            if not value or value.startswith(PLACEHOLDER_PREFIX):
                raise ValueError(
                    f"{name} must be set to a real secret when ENVIRONMENT is {self.ENVIRONMENT!r}"
                )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
