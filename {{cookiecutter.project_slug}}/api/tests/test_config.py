import pytest
from pydantic import ValidationError

from app.core.config import Settings

WORKER_QUEUE = "{{ cookiecutter.worker_name }}"


@pytest.mark.parametrize("environment", ["staging", "production"])
@pytest.mark.parametrize("secret", ["", "changethis-secret-key"])
def test_deployments_refuse_a_missing_or_placeholder_secret(environment: str, secret: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY must be set"):
        Settings(
            ENVIRONMENT=environment,
            SECRET_KEY=secret,
            FIRST_SUPERUSER_PASSWORD="a-real-password",
        )


def test_deployment_starts_with_real_secrets() -> None:
    settings = Settings(
        ENVIRONMENT="production",
        SECRET_KEY="k" * 43,
        FIRST_SUPERUSER_PASSWORD="a-real-password",
    )
    assert settings.SECRET_KEY.get_secret_value() == "k" * 43


def test_local_development_accepts_placeholders() -> None:
    settings = Settings(ENVIRONMENT="local", SECRET_KEY="changethis-secret-key")
    assert settings.ENVIRONMENT == "local"


def test_tasks_are_published_to_the_worker_queue() -> None:
    assert Settings.model_fields["CELERY_TASK_QUEUE"].default == WORKER_QUEUE
