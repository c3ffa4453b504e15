import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Settings, get_settings

API_ROOT = Path(__file__).resolve().parents[1]
REAL_PASSWORD = "a-real-password"


@pytest.mark.parametrize("environment", ["staging", "production"])
@pytest.mark.parametrize("secret", ["", "changethis-secret-key"])
def test_deployments_refuse_a_missing_or_placeholder_secret(environment: str, secret: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY must be set"):
        Settings(ENVIRONMENT=environment, SECRET_KEY=secret, FIRST_SUPERUSER_PASSWORD=REAL_PASSWORD)


def test_deployments_refuse_a_placeholder_superuser_password() -> None:
    with pytest.raises(ValidationError, match="FIRST_SUPERUSER_PASSWORD must be set"):
        Settings(
            ENVIRONMENT="production",
            SECRET_KEY="k" * 43,
            FIRST_SUPERUSER_PASSWORD="changethis-superuser-password",
        )


def test_deployment_starts_with_real_secrets() -> None:
    settings = Settings(
        ENVIRONMENT="production", SECRET_KEY="k" * 43, FIRST_SUPERUSER_PASSWORD=REAL_PASSWORD
    )
    assert settings.SECRET_KEY.get_secret_value() == "k" * 43


@pytest.mark.parametrize(
    ("secret", "password", "refused"),
    [
        ("k" * 31, REAL_PASSWORD, "SECRET_KEY must be set to a real secret of at least 32 bytes"),
        ("k" * 43, "", "FIRST_SUPERUSER_PASSWORD must be set to a real password"),
        ("k" * 43, "short-pass1", "FIRST_SUPERUSER_PASSWORD must be set to a real password"),
    ],
)
def test_deployments_refuse_a_short_key_or_a_weak_password(
    secret: str, password: str, refused: str
) -> None:
    with pytest.raises(ValidationError, match=refused):
        Settings(ENVIRONMENT="staging", SECRET_KEY=secret, FIRST_SUPERUSER_PASSWORD=password)


def test_a_longer_hash_needs_a_longer_key() -> None:
    with pytest.raises(ValidationError, match="at least 64 bytes for HS512"):
        Settings(
            ENVIRONMENT="production",
            JWT_ALGORITHM="HS512",
            SECRET_KEY="k" * 43,
            FIRST_SUPERUSER_PASSWORD=REAL_PASSWORD,
        )


def test_without_an_environment_the_settings_are_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container started without .env is a deployment, not a laptop."""
    monkeypatch.delenv("ENVIRONMENT")
    with pytest.raises(ValidationError, match="when ENVIRONMENT is 'production'"):
        Settings(_env_file=None, SECRET_KEY="changethis-secret-key")


def test_local_development_accepts_placeholders_but_not_an_empty_key() -> None:
    settings = Settings(ENVIRONMENT="local", SECRET_KEY="changethis-secret-key")
    assert settings.ENVIRONMENT == "local"
    with pytest.raises(ValidationError, match="SECRET_KEY must be set"):
        Settings(ENVIRONMENT="local", SECRET_KEY="")


def test_cors_origins_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings().CORS_ORIGINS == ["https://a.example", "https://b.example"]


def test_bad_settings_stop_with_one_readable_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "changethis-secret-key")
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as stopped:
            get_settings()
    finally:
        get_settings.cache_clear()
    message = str(stopped.value.code)
    assert message.startswith("Invalid settings: SECRET_KEY must be set to a real secret")
    assert "\n" not in message


def test_the_api_refuses_to_start_with_a_placeholder_secret() -> None:
    environment = {
        **os.environ,
        "ENVIRONMENT": "production",
        "SECRET_KEY": "changethis-secret-key",
    }
    started = subprocess.run(
        [sys.executable, "-c", "import app.main"],
        cwd=API_ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert started.returncode == 1
    assert started.stderr.strip().splitlines() == [
        "Invalid settings: SECRET_KEY must be set to a real secret of at least 32 bytes"
        " for HS256 when ENVIRONMENT is 'production'"
    ]
