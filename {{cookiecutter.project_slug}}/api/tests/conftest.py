"""Fixtures: a fresh PostgreSQL database for the run, emptied after each test.

The database is created next to the configured one, on the same server, and
dropped at the end, so the tests never touch the data of the service they test.
"""

import asyncio
import os
import secrets
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from celery import Celery
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import get_settings

CONFIGURED_URL = make_url(get_settings().POSTGRES_DATABASE_URL)
# The tests' worker consumes a queue of its own, deleted at the end, so that a
# worker already serving the real queue neither steals nor receives test tasks.
TEST_QUEUE = f"test.{get_settings().CELERY_TASK_QUEUE}.{uuid.uuid4().hex[:12]}"
TEST_LONG_QUEUE = f"{TEST_QUEUE}-long"
TEST_DATABASE = f"{CONFIGURED_URL.database}_test_{uuid.uuid4().hex[:8]}"
TEST_DATABASE_URL = CONFIGURED_URL.set(database=TEST_DATABASE).render_as_string(hide_password=False)
os.environ.update(
    POSTGRES_DATABASE_URL=TEST_DATABASE_URL,
    ENVIRONMENT="test",
    # The tests never depend on the secrets of .env.
    SECRET_KEY=secrets.token_urlsafe(32),
    FIRST_SUPERUSER_EMAIL="first.admin@example.com",
    FIRST_SUPERUSER_PASSWORD=secrets.token_urlsafe(16),
    CELERY_TASK_QUEUE=TEST_QUEUE,
    CELERY_LONG_TASK_QUEUE=TEST_LONG_QUEUE,
    # Every test logs in from 127.0.0.1: the address limit has its own tests.
    LOGIN_ATTEMPTS_PER_ADDRESS="10000/minute",
)
get_settings.cache_clear()

from app.core.config import QUEUE_TYPE, TASK_SERIALIZER, Settings  # noqa: E402  (settings must be set first)
from app.core.security import create_access_token, password_hash  # noqa: E402
from app.main import create_app  # noqa: E402
from app.models import Base, User  # noqa: E402
from taskengine import TaskEngine, task_records  # noqa: E402
from testkit import celery_client, celery_worker, delete_queue, free_port  # noqa: E402
from testkit.fixtures import closed_port, dead_port, silent_port  # noqa: E402, F401
from testkit.migrations import migrated_database  # noqa: E402
from tests.browser import SAVED_SCREENSHOTS, browser_missing  # noqa: E402

# Hashing is slow on purpose; the users of the tests share one hash.
PASSWORD = "correct horse battery staple"
PASSWORD_HASH = password_hash.hash(PASSWORD)


def postgres_problem() -> str | None:
    host, port = CONFIGURED_URL.host or "127.0.0.1", CONFIGURED_URL.port or 5432
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as error:
        return f"PostgreSQL (POSTGRES_DATABASE_URL) is not answering at {host}:{port} ({error})"
    return None


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """Create and migrate the run's database; drop it when the run ends."""
    problem = postgres_problem()
    if problem:
        pytest.exit(f"Cannot test the API: {problem}", returncode=3)
    with migrated_database(TEST_DATABASE_URL) as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """One app for the run, started and stopped like uvicorn does it."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
def engine(app: FastAPI) -> AsyncEngine:
    engine: AsyncEngine = app.state.db_engine
    return engine


@pytest.fixture(scope="session")
def task_engine(app: FastAPI) -> TaskEngine:
    task_engine: TaskEngine = app.state.task_engine
    return task_engine


@pytest.fixture(autouse=True)
async def empty_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Each test starts from empty tables, whatever the previous one committed."""
    yield
    if "engine" not in request.fixturenames:
        return
    engine: AsyncEngine = request.getfixturevalue("engine")
    every_table = [*Base.metadata.sorted_tables, task_records]
    tables = ", ".join(table.name for table in every_table)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} CASCADE"))


@pytest.fixture
async def client(app: FastAPI, engine: AsyncEngine) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


MakeUser = Callable[..., Awaitable[User]]


@pytest.fixture
def make_user(app: FastAPI, engine: AsyncEngine) -> MakeUser:
    """Insert an account whose password is PASSWORD."""

    async def make(
        email: str | None = None, *, is_superuser: bool = False, is_active: bool = True
    ) -> User:
        user = User(
            email=email or f"user-{uuid.uuid4().hex[:8]}@example.com",
            hashed_password=PASSWORD_HASH,
            is_superuser=is_superuser,
            is_active=is_active,
        )
        async with app.state.sessionmaker() as session:
            session.add(user)
            await session.commit()
        return user

    return make


@pytest.fixture
def auth_headers(settings: Settings) -> Callable[[User], dict[str, str]]:
    def headers(user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {create_access_token(user.id, settings)}"}

    return headers


@pytest.fixture
async def user(make_user: MakeUser) -> User:
    return await make_user()


@pytest.fixture
async def superuser(make_user: MakeUser) -> User:
    return await make_user(is_superuser=True)


@pytest.fixture(scope="session")
def celery(settings: Settings) -> Iterator[Celery]:
    """A plain Celery client of the run's broker and result backend: it reads
    what workers stored, as they left it, and starts and stops workers."""
    client = celery_client(
        settings.CELERY_BROKER_URL, settings.CELERY_RESULT_BACKEND_URL, TASK_SERIALIZER, QUEUE_TYPE
    )
    yield client
    client.close()


@pytest.fixture(scope="session")
def worker(celery: Celery, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`celery worker` on both test queues (short and long tasks), two
    processes; yields its node name. (The tests of test_faults.py run the two
    kinds of tasks on workers of their own.)"""
    node = f"api-test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    options = [
        *("--concurrency=2", "--loglevel=INFO", "--without-gossip", "--without-mingle"),
        f"--queues={TEST_QUEUE},{TEST_LONG_QUEUE}",
    ]
    try:
        with (
            log.open("w") as output,
            celery_worker(celery, TEST_QUEUE, node, options, output=output),
        ):
            yield node
    except RuntimeError as error:
        pytest.fail(f"{error}:\n{log.read_text()}")
    finally:
        delete_queue(celery, TEST_LONG_QUEUE)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """The app started as uvicorn starts it (lifespan), and a client for it."""
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@asynccontextmanager
async def listening(app: FastAPI, **config: Any) -> AsyncIterator[str]:
    """The app (already started) served by uvicorn on a real port of this
    loop, for clients that need a real socket (browsers, streams); yields the
    host:port. `config`: more of uvicorn's Config options."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, port=port, lifespan="off", log_level="warning", **config)
    )
    serving_task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving_task.done():
                serving_task.result()  # raises what stopped it
            await asyncio.sleep(0.01)
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving_task


@pytest.fixture(scope="module")
async def server(app: FastAPI) -> AsyncIterator[str]:
    """The run's app on a real port, for a module's browser or socket tests."""
    async with listening(app) as address:
        yield address


@pytest.fixture(scope="module")
def browser() -> None:
    """Skip (or with REQUIRE_BROWSER=1, fail) when there is no browser to drive."""
    problem = browser_missing()
    if problem and os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(problem)
    if problem:
        pytest.skip(problem)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SAVED_SCREENSHOTS:
        terminalreporter.section("screenshots")
        for path in SAVED_SCREENSHOTS:
            terminalreporter.write_line(str(path))
