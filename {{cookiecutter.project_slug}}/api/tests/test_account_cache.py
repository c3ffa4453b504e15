"""Accounts kept per process (app/services/accounts.py): a change reaches
every API process within ACCOUNT_CACHE_SECONDS, and concurrent requests for an
account share one read of it."""

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.models import User
from app.services.accounts import AccountCache
from benchmarks.servers import api_process
from tests.conftest import MakeUser

USERS_URL = "/api/v1/users"
ME_URL = f"{USERS_URL}/me"


@contextmanager
def account_reads(engine: AsyncEngine) -> Iterator[list[str]]:
    """The statements that read accounts while the block runs."""
    reads: list[str] = []

    def seen(_connection, _cursor, statement: str, *_args) -> None:
        if "FROM users" in statement:
            reads.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield reads
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)


@pytest.fixture(scope="module")
def two_processes(database_url: str) -> Iterator[tuple[str, str]]:
    """Two API processes on the tests' database, as with API_WORKERS=2."""
    with api_process() as (first, _), api_process() as (second, _):
        yield first, second


@pytest.mark.parametrize(
    ("change", "refused"),
    [({"is_active": False}, ME_URL), ({"is_superuser": False}, USERS_URL)],
    ids=["deactivated", "demoted"],
)
async def test_a_change_reaches_every_process_within_the_cache_time(
    two_processes: tuple[str, str],
    make_user: MakeUser,
    auth_headers,
    settings: Settings,
    change: dict[str, bool],
    refused: str,
) -> None:
    admin = await make_user(is_superuser=True)
    target = auth_headers(await make_user(is_superuser=True))
    changing, other = (AsyncClient(base_url=base) for base in two_processes)
    async with changing, other:
        for process in (changing, other):
            # Both processes now keep the account, with its rights.
            assert (await process.get(refused, headers=target)).status_code == 200
        me = (await changing.get(ME_URL, headers=target)).json()
        patched = await changing.patch(
            f"{USERS_URL}/{me['id']}", json=change, headers=auth_headers(admin)
        )
        assert patched.status_code == 200
        changed_at = time.monotonic()
        # At once on the process that made the change,
        assert (await changing.get(refused, headers=target)).status_code == 403
        # and on the other once its copy, read before the change, has expired.
        await asyncio.sleep(changed_at + settings.ACCOUNT_CACHE_SECONDS - time.monotonic())
        assert (await other.get(refused, headers=target)).status_code == 403


async def test_requests_at_once_share_one_read_of_their_account(
    app: FastAPI, client: AsyncClient, engine: AsyncEngine, user: User, auth_headers
) -> None:
    app.state.account_cache.forget(user.id)
    with account_reads(engine) as reads:
        answers = await asyncio.gather(
            *(client.get(ME_URL, headers=auth_headers(user)) for _ in range(20))
        )
        assert [answer.status_code for answer in answers] == [200] * 20
        assert len(reads) == 1
        # Kept: the next request reads nothing.
        assert (await client.get(ME_URL, headers=auth_headers(user))).status_code == 200
        assert len(reads) == 1


async def test_an_account_is_read_again_once_its_copy_expires(
    app: FastAPI, engine: AsyncEngine, user: User
) -> None:
    accounts = AccountCache(app.state.sessionmaker, seconds=0.2)
    with account_reads(engine) as reads:
        first = await accounts.get(user.id)
        assert await accounts.get(user.id) is first
        await asyncio.sleep(0.25)
        again = await accounts.get(user.id)
        assert len(reads) == 2
    assert first is not None and again == first


async def test_zero_seconds_reads_the_account_every_time(
    app: FastAPI, engine: AsyncEngine, user: User
) -> None:
    accounts = AccountCache(app.state.sessionmaker, seconds=0)
    with account_reads(engine) as reads:
        for _ in range(3):
            assert await accounts.get(user.id) is not None
        assert len(reads) == 3
