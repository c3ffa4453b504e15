import asyncio
import base64
import json
import secrets
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from httpx import AsyncClient
from pydantic import SecretStr

from app.core import security
from app.core.config import Settings, get_settings
from app.models import User
from tests.conftest import PASSWORD, MakeUser

TOKEN_URL = "/api/v1/auth/token"
ME_URL = "/api/v1/users/me"


async def login(client: AsyncClient, email: str, password: str):
    return await client.post(TOKEN_URL, data={"username": email, "password": password})


def signed(claims: dict, settings: Settings, *, key: str | None = None, algorithm: str = "HS256"):
    secret = key or settings.SECRET_KEY.get_secret_value()
    with warnings.catch_warnings():
        # HS512 with the tests' 43-byte key: short for it, and refused anyway.
        warnings.filterwarnings("ignore", message="The HMAC key is")
        return jwt.encode(claims, secret, algorithm=algorithm)


def claims_for(user_id: object, **overrides: object) -> dict:
    settings = get_settings()
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "type": "access",
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def unsigned(claims: dict) -> str:
    """A token that claims `alg: none` and carries no signature."""

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    payload = {
        key: int(value.timestamp()) if isinstance(value, datetime) else value
        for key, value in claims.items()
    }
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


async def test_login_returns_a_bearer_token_for_the_user(
    client: AsyncClient, user: User, settings: Settings
) -> None:
    response = await login(client, user.email, PASSWORD)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    claims = jwt.decode(
        body["access_token"],
        settings.SECRET_KEY.get_secret_value(),
        algorithms=["HS256"],
        audience=settings.JWT_AUDIENCE,
    )
    assert claims["iss"] == settings.JWT_ISSUER
    assert claims["sub"] == str(user.id)
    assert claims["type"] == "access"
    assert claims["exp"] - claims["iat"] == settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60

    me = await client.get(ME_URL, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == user.email


async def test_login_ignores_the_case_of_the_email(client: AsyncClient, user: User) -> None:
    response = await login(client, user.email.upper(), PASSWORD)
    assert response.status_code == 200


@pytest.mark.parametrize("known_email", [True, False])
async def test_failed_login_is_401_and_checks_a_hash_either_way(
    client: AsyncClient, user: User, monkeypatch: pytest.MonkeyPatch, known_email: bool
) -> None:
    checked: list[str] = []
    verify = security.password_hash.verify

    def counting_verify(password: str, hashed: str) -> bool:
        checked.append(hashed)
        return verify(password, hashed)

    monkeypatch.setattr(security.password_hash, "verify", counting_verify)
    email = user.email if known_email else "nobody@example.com"
    response = await login(client, email, "wrong password")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "Incorrect e-mail or password"}
    # An unknown e-mail costs one hash check too, so timing does not tell them apart.
    assert len(checked) == 1
    assert (checked[0] == security.dummy_hash()) is not known_email


async def test_inactive_user_cannot_log_in(client: AsyncClient, make_user: MakeUser) -> None:
    inactive = await make_user(is_active=False)
    response = await login(client, inactive.email, PASSWORD)
    assert response.status_code == 403


async def test_login_form_is_validated(client: AsyncClient) -> None:
    response = await client.post(TOKEN_URL, data={"username": "a@example.com"})
    assert response.status_code == 422


BAD_TOKENS = {
    "malformed": lambda user, settings: "not-a-jwt",
    "expired": lambda user, settings: signed(
        claims_for(user.id, exp=datetime.now(UTC) - timedelta(seconds=1)), settings
    ),
    "wrong signature": lambda user, settings: signed(claims_for(user.id), settings, key="x" * 32),
    "alg none": lambda user, settings: unsigned(claims_for(user.id)),
    "other algorithm": lambda user, settings: signed(
        claims_for(user.id), settings, algorithm="HS512"
    ),
    "wrong type": lambda user, settings: signed(claims_for(user.id, type="refresh"), settings),
    "no type": lambda user, settings: signed(claims_for(user.id, type=None), settings),
    "no expiry": lambda user, settings: signed(claims_for(user.id, exp=None), settings),
    "no audience": lambda user, settings: signed(claims_for(user.id, aud=None), settings),
    "other audience": lambda user, settings: signed(claims_for(user.id, aud="billing"), settings),
    "no issuer": lambda user, settings: signed(claims_for(user.id, iss=None), settings),
    "other issuer": lambda user, settings: signed(claims_for(user.id, iss="someone"), settings),
    "subject not an id": lambda user, settings: signed(claims_for("admin"), settings),
    "unknown user": lambda user, settings: signed(claims_for(uuid.uuid4()), settings),
    "tampered payload": lambda user, settings: tamper(signed(claims_for(user.id), settings)),
}


def tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = str(uuid.uuid4())
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_bad_token_is_401_with_bearer_challenge(
    client: AsyncClient, user: User, settings: Settings, kind: str
) -> None:
    token = BAD_TOKENS[kind](user, settings)
    response = await client.get(ME_URL, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, kind
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "Could not validate credentials"}


@pytest.mark.parametrize("header", [None, "Bearer", "Basic dXNlcjpwYXNz", "token-without-scheme"])
async def test_missing_token_is_401_with_bearer_challenge(
    client: AsyncClient, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = await client.get(ME_URL, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_token_accepted_before_is_refused_once_it_expires(
    client: AsyncClient, user: User, settings: Settings
) -> None:
    """Tokens are verified once, then only their expiry (security.verified_claims)."""
    # `exp` is in whole seconds: valid for one second at least.
    expires = int((datetime.now(UTC) + timedelta(seconds=2)).timestamp())
    headers = {"Authorization": f"Bearer {signed(claims_for(user.id, exp=expires), settings)}"}
    assert (await client.get(ME_URL, headers=headers)).status_code == 200
    await asyncio.sleep(expires - time.time() + 0.05)
    response = await client.get(ME_URL, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "Could not validate credentials"}


def test_a_token_verified_under_one_key_is_refused_under_another(
    user: User, settings: Settings
) -> None:
    token = security.create_access_token(user.id, settings)
    assert security.decode_access_token(token, settings) == user.id
    other_key = settings.model_copy(update={"SECRET_KEY": SecretStr(secrets.token_urlsafe(32))})
    with pytest.raises(security.InvalidTokenError):
        security.decode_access_token(token, other_key)


async def test_token_of_a_deactivated_user_is_refused_with_403(
    client: AsyncClient, make_user: MakeUser, auth_headers
) -> None:
    inactive = await make_user(is_active=False)
    response = await client.get(ME_URL, headers=auth_headers(inactive))
    assert response.status_code == 403
    assert response.json() == {"detail": "Inactive user"}


async def test_registration_is_closed_by_default(client: AsyncClient, settings: Settings) -> None:
    assert settings.OPEN_REGISTRATION is False
    response = await client.post(
        "/api/v1/auth/register", json={"email": "new@example.com", "password": PASSWORD}
    )
    assert response.status_code == 403


async def test_open_registration_creates_plain_accounts(
    client: AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "OPEN_REGISTRATION", True)
    body = {"email": "New@Example.com", "password": PASSWORD}
    response = await client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 201
    assert response.json()["email"] == "new@example.com"
    assert response.json()["is_superuser"] is False
    again = await client.post("/api/v1/auth/register", json=body)
    assert again.status_code == 409
    short = await client.post(
        "/api/v1/auth/register", json={"email": "b@example.com", "password": "short"}
    )
    assert short.status_code == 422
    assert (await login(client, "new@example.com", PASSWORD)).status_code == 200
