import uuid

import pytest
from httpx import AsyncClient

from app.models import User
from tests.conftest import PASSWORD, MakeUser

USERS_URL = "/api/v1/users"


async def test_me_describes_the_caller(client: AsyncClient, user: User, auth_headers) -> None:
    response = await client.get(f"{USERS_URL}/me", headers=auth_headers(user))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(user.id)
    assert body["email"] == user.email
    assert body["is_superuser"] is False
    assert "hashed_password" not in body


async def test_superuser_creates_an_account_that_can_log_in(
    client: AsyncClient, superuser: User, auth_headers
) -> None:
    response = await client.post(
        USERS_URL,
        json={"email": "Colleague@Example.com", "password": PASSWORD},
        headers=auth_headers(superuser),
    )
    assert response.status_code == 201
    assert response.json()["email"] == "colleague@example.com"
    login = await client.post(
        "/api/v1/auth/token", data={"username": "colleague@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200


async def test_duplicate_email_is_409_whatever_its_case(
    client: AsyncClient, superuser: User, auth_headers
) -> None:
    headers = auth_headers(superuser)
    body = {"email": superuser.email.upper(), "password": PASSWORD}
    response = await client.post(USERS_URL, json=body, headers=headers)
    assert response.status_code == 409
    assert response.json() == {"detail": "E-mail already registered"}


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "short@example.com", "password": "1234567"},
        {"email": "long@example.com", "password": "x" * 129},
        {"email": "missing-password@example.com"},
    ],
)
async def test_invalid_account_is_422(
    client: AsyncClient, superuser: User, auth_headers, body: dict
) -> None:
    response = await client.post(USERS_URL, json=body, headers=auth_headers(superuser))
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


async def test_plain_users_cannot_manage_accounts(
    client: AsyncClient, user: User, auth_headers
) -> None:
    headers = auth_headers(user)
    created = await client.post(
        USERS_URL, json={"email": "x@example.com", "password": PASSWORD}, headers=headers
    )
    assert created.status_code == 403
    assert (await client.get(USERS_URL, headers=headers)).status_code == 403
    patched = await client.patch(
        f"{USERS_URL}/{user.id}", json={"is_superuser": True}, headers=headers
    )
    assert patched.status_code == 403


async def test_superuser_lists_accounts_page_by_page(
    client: AsyncClient, superuser: User, make_user: MakeUser, auth_headers
) -> None:
    for _ in range(4):
        await make_user()
    headers = auth_headers(superuser)
    first = (await client.get(USERS_URL, params={"limit": 3}, headers=headers)).json()
    second = (await client.get(USERS_URL, params={"offset": 3, "limit": 3}, headers=headers)).json()
    assert first["total"] == second["total"] == 5
    assert len(first["items"]) == 3
    assert len(second["items"]) == 2
    ids = {item["id"] for item in first["items"] + second["items"]}
    assert len(ids) == 5
    too_many = await client.get(USERS_URL, params={"limit": 101}, headers=headers)
    assert too_many.status_code == 422


async def test_deactivated_account_loses_access(
    client: AsyncClient, superuser: User, user: User, auth_headers
) -> None:
    response = await client.patch(
        f"{USERS_URL}/{user.id}", json={"is_active": False}, headers=auth_headers(superuser)
    )
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert (await client.get(f"{USERS_URL}/me", headers=auth_headers(user))).status_code == 403
    login = await client.post(
        "/api/v1/auth/token", data={"username": user.email, "password": PASSWORD}
    )
    assert login.status_code == 403


async def test_updating_an_unknown_or_malformed_id(
    client: AsyncClient, superuser: User, auth_headers
) -> None:
    headers = auth_headers(superuser)
    unknown = await client.patch(
        f"{USERS_URL}/{uuid.uuid4()}", json={"is_active": False}, headers=headers
    )
    assert unknown.status_code == 404
    malformed = await client.patch(f"{USERS_URL}/42", json={"is_active": False}, headers=headers)
    assert malformed.status_code == 404
