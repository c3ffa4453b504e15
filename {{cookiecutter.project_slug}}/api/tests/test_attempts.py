"""Login and sign-up attempts: limited per account and per client address
(429 with Retry-After, counted in the real Redis), and password hashing
capped at one per core (a flood waits, then gets 503)."""

import asyncio
import threading
import time
import uuid

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.core import security
from app.core.config import Settings
from app.main import create_app
from app.models import User
from tests.conftest import PASSWORD, serving

TOKEN_URL = "/api/v1/auth/token"


async def login(client: AsyncClient, email: str, password: str = "wrong password") -> int:
    response = await client.post(TOKEN_URL, data={"username": email, "password": password})
    if response.status_code == 429:
        assert response.json() == {"detail": "Too many attempts; try again later"}
        assert 0 < int(response.headers["retry-after"]) <= 60
    return response.status_code


async def test_an_account_gets_five_tries_a_minute(client: AsyncClient, user: User) -> None:
    statuses = [await login(client, user.email) for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    # Even the right password waits now: guessing cannot go on.
    assert await login(client, user.email.upper(), PASSWORD) == 429
    # Another account, from the same address, is not held up.
    assert await login(client, f"other-{uuid.uuid4().hex[:8]}@example.com") == 401


async def test_nobody_elsewhere_can_lock_an_account_out(app: FastAPI, user: User) -> None:
    async def from_address(address: str, password: str) -> int:
        transport = ASGITransport(app=app, client=(address, 40000))
        async with AsyncClient(transport=transport, base_url="http://test") as client:
            return await login(client, user.email, password)

    assert [await from_address("203.0.113.7", "guess") for _ in range(6)][-1] == 429
    assert await from_address("198.51.100.20", PASSWORD) == 200
    # IPv6 clients are counted by their /64: a new address in it is no new client.
    assert [await from_address(f"2001:db8::{n}", "guess") for n in range(1, 7)][-1] == 429


@pytest.mark.parametrize("username", ["a\x00b@example.com", "a" * 100_000 + "@example.com"])
async def test_a_username_no_account_can_have_is_401_at_once(
    client: AsyncClient, username: str
) -> None:
    response = await client.post(TOKEN_URL, data={"username": username, "password": "x"})
    assert response.status_code == 401


async def test_an_address_gets_its_own_limit(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"LOGIN_ATTEMPTS_PER_ADDRESS": "3/minute"}))
    async with serving(app) as client:
        emails = [f"guess-{index}-{uuid.uuid4().hex[:6]}@example.com" for index in range(4)]
        assert [await login(client, email) for email in emails] == [401, 401, 401, 429]


async def test_sign_ups_count_against_the_address(settings: Settings) -> None:
    app = create_app(
        settings.model_copy(
            update={"OPEN_REGISTRATION": True, "LOGIN_ATTEMPTS_PER_ADDRESS": "2/minute"}
        )
    )
    async with serving(app) as client:
        statuses = []
        for _ in range(3):
            body = {"email": f"new-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
            statuses.append((await client.post("/api/v1/auth/register", json=body)).status_code)
    assert statuses == [201, 201, 429]


async def test_no_more_hashes_at_once_than_cores(
    client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def slow_verify(password: str, hashed: str) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return False

    monkeypatch.setattr(security.password_hash, "verify", slow_verify)
    emails = [f"flood-{index}-{uuid.uuid4().hex[:6]}@example.com" for index in range(24)]
    statuses = await asyncio.gather(*(login(client, email) for email in emails))
    assert statuses == [401] * len(emails)
    # At most one per core (and never more than the logins sent).
    assert most == min(security.HASHING_SLOTS, len(emails))


async def test_a_check_that_waits_too_long_is_503(
    client: AsyncClient, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(security, "HASHING_WAIT", 0.2)
    for _ in range(security.HASHING_SLOTS):
        await security.hashing_slots().acquire()  # every slot busy
    try:
        response = await client.post(TOKEN_URL, data={"username": user.email, "password": PASSWORD})
    finally:
        for _ in range(security.HASHING_SLOTS):
            security.hashing_slots().release()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


async def test_logins_waiting_for_a_hash_hold_no_database_connection(
    client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(security, "HASHING_WAIT", 1.5)
    for _ in range(security.HASHING_SLOTS):
        await security.hashing_slots().acquire()  # every slot busy: the logins wait in line
    began = time.monotonic()
    try:
        # Three times what the database pool holds (15): were the waiting logins
        # holding connections, they would be refused in three rounds, not one.
        emails = [f"queued-{index}-{uuid.uuid4().hex[:6]}@example.com" for index in range(45)]
        responses = await asyncio.gather(
            *(client.post(TOKEN_URL, data={"username": e, "password": "x"}) for e in emails)
        )
    finally:
        for _ in range(security.HASHING_SLOTS):
            security.hashing_slots().release()
    assert [response.status_code for response in responses] == [503] * len(emails)
    assert time.monotonic() - began < 3.5  # one round of 1.5 s, not three
