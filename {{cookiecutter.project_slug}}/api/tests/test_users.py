import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from httpx import AsyncClient

from app.models import User
from tests.conftest import PASSWORD, MakeUser

USERS_URL = "/api/v1/users"
API_ROOT = Path(__file__).resolve().parents[1]


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


@pytest.mark.parametrize("change", [{"is_superuser": False}, {"is_active": False}])
async def test_the_last_active_superuser_cannot_be_demoted_or_deactivated(
    client: AsyncClient, make_user: MakeUser, auth_headers, change: dict
) -> None:
    boss = await make_user(is_superuser=True)
    headers = auth_headers(boss)
    response = await client.patch(f"{USERS_URL}/{boss.id}", json=change, headers=headers)
    assert response.status_code == 409
    assert response.json() == {
        "detail": "The last active superuser cannot be demoted or deactivated"
    }
    me = (await client.get(f"{USERS_URL}/me", headers=headers)).json()
    assert (me["is_active"], me["is_superuser"]) == (True, True)

    # With another active superuser, it can; then that one is the last.
    other = await make_user(is_superuser=True)
    response = await client.patch(f"{USERS_URL}/{boss.id}", json=change, headers=headers)
    assert response.status_code == 200
    response = await client.patch(
        f"{USERS_URL}/{other.id}", json=change, headers=auth_headers(other)
    )
    assert response.status_code == 409


async def test_an_inactive_superuser_does_not_count(
    client: AsyncClient, make_user: MakeUser, auth_headers
) -> None:
    boss = await make_user(is_superuser=True)
    await make_user(is_superuser=True, is_active=False)
    response = await client.patch(
        f"{USERS_URL}/{boss.id}", json={"is_superuser": False}, headers=auth_headers(boss)
    )
    assert response.status_code == 409


def restore(email: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "commands.restore_superuser", email],
        cwd=API_ROOT,
        capture_output=True,
        text=True,
    )


async def test_a_superuser_is_restored_from_the_command_line(
    client: AsyncClient, make_user: MakeUser, auth_headers
) -> None:
    locked_out = await make_user(is_active=False)
    result = await asyncio.to_thread(restore, locked_out.email.upper())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{locked_out.email} is an active superuser again"
    me = (await client.get(f"{USERS_URL}/me", headers=auth_headers(locked_out))).json()
    assert (me["is_active"], me["is_superuser"]) == (True, True)

    unknown = await asyncio.to_thread(restore, "nobody@example.com")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "No account has the e-mail nobody@example.com"


async def test_two_superusers_demoting_each_other_at_once_leave_one(
    client: AsyncClient, make_user: MakeUser, auth_headers
) -> None:
    first, second = await make_user(is_superuser=True), await make_user(is_superuser=True)
    demote = {"is_superuser": False}
    answers = await asyncio.gather(
        client.patch(f"{USERS_URL}/{second.id}", json=demote, headers=auth_headers(first)),
        client.patch(f"{USERS_URL}/{first.id}", json=demote, headers=auth_headers(second)),
    )
    # One wins; the other is refused: 409 if it was checked while both were
    # superusers, 403 if its own demotion had already landed. Never a 500.
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses[0] == 200 and statuses[1] in (403, 409), statuses
    still = [
        (await client.get(f"{USERS_URL}/me", headers=auth_headers(who))).json()["is_superuser"]
        for who in (first, second)
    ]
    assert sorted(still) == [False, True]
