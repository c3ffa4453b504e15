"""Fixtures of the engine's tests: the real PostgreSQL, RabbitMQ and Redis, and
the render's real worker, each with a part of its own for this run.

- PostgreSQL: a database of the run's own beside the configured one
  (`<name>_engine_<random>`), its one table made from `task_records.metadata`,
  emptied after each test that used it, dropped at the end;
- RabbitMQ: a queue of the run's own, consumed by a real `celery worker` of
  the render (worker/, started as a process), deleted at the end; a test that
  needs a queue nobody consumes gets one of its own (`idle_queue`);
- Redis: the engine's keys under a key prefix of the run's own, deleted at the
  end (Celery's own keys are named by task ids, unique to each test).

Settings come from the environment, where the service's tests take them too:
POSTGRES_DATABASE_URL, CELERY_BROKER_URL and CELERY_RESULT_BACKEND_URL, with
localhost defaults; the serializer is the one the project was rendered with
(these tests import neither the service nor the worker, which say the same).

Nothing here imports the service (`app`): the engine is tested on its own.
"""

import dataclasses
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from celery import Celery
from redis.asyncio import Redis
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from taskengine import EngineConfig, TaskEngine, open_engine, task_records
from testkit import (
    celery_client,
    celery_worker,
    create_database,
    database_beside,
    delete_queue,
    drop_database,
)
from testkit.fixtures import closed_port, dead_port, silent_port  # noqa: F401

POSTGRES_URL = os.environ.get(
    "POSTGRES_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/taskengine"
)
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("CELERY_RESULT_BACKEND_URL", "redis://127.0.0.1:6379/0")
SERIALIZER = "{{ cookiecutter.task_serializer }}"
QUEUE_TYPE = "{{ cookiecutter.queue_type }}"

RUN = uuid.uuid4().hex[:12]
# What the engine counts in Redis, and the queue its tasks go to, are this run's own.
KEY_PREFIX = f"taskengine-test-{RUN}"
QUEUE = f"test.taskengine.{RUN}"


def asyncpg_url(url: str) -> str:
    """asyncpg's own form of a database URL: no driver in its scheme."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_port(url: str, port: int) -> str:
    """The same URL with another port (amqp:// and redis:// too)."""
    parsed = urlsplit(url)
    credentials, _, _ = parsed.netloc.rpartition("@")
    netloc = f"{credentials}@" if credentials else ""
    return parsed._replace(netloc=f"{netloc}{parsed.hostname}:{port}").geturl()


def missing_services() -> list[str]:
    """What the tests need and cannot reach, one line each."""
    needed = [
        ("PostgreSQL (POSTGRES_DATABASE_URL)", POSTGRES_URL, 5432),
        ("RabbitMQ (CELERY_BROKER_URL)", BROKER_URL, 5672),
        ("Redis (CELERY_RESULT_BACKEND_URL)", REDIS_URL, 6379),
    ]
    problems = []
    for name, url, default_port in needed:
        parsed = urlsplit(url)
        host, port = parsed.hostname or "127.0.0.1", parsed.port or default_port
        try:
            socket.create_connection((host, port), timeout=2).close()
        except OSError as error:
            problems.append(f"{name} is not answering at {host}:{port} ({error})")
    return problems


@pytest.fixture(scope="session")
def services() -> None:
    """Stop the run at once, saying what is missing, when a service is away."""
    problems = missing_services()
    if problems:
        pytest.exit("Cannot test the engine: " + "; ".join(problems), returncode=3)


@pytest.fixture(scope="session")
async def database(services: None) -> AsyncIterator[str]:
    """The run's database with the records table; its asyncpg URL."""
    url = database_beside(POSTGRES_URL, "engine")
    await create_database(url)
    try:
        schema = create_async_engine(make_url(url).set(drivername="postgresql+asyncpg"))
        try:
            async with schema.begin() as connection:
                await connection.run_sync(task_records.metadata.create_all)
        finally:
            await schema.dispose()
        yield asyncpg_url(url)
    finally:
        await drop_database(url)


@pytest.fixture(scope="session")
async def db(database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the tests' own, to read what the engine wrote."""
    connection = await asyncpg.connect(database)
    yield connection
    await connection.close()


@pytest.fixture(autouse=True)
async def empty_records(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Each test starts without records, whatever the previous one wrote."""
    yield
    if "database" in request.fixturenames:  # through any fixture: engines, records...
        # Made before the test ran: its value is there to take.
        connection = await asyncpg.connect(request.getfixturevalue("database"))
        try:
            await connection.execute(f"TRUNCATE {task_records.name}")
        finally:
            await connection.close()


@pytest.fixture(scope="session")
async def redis(services: None) -> AsyncIterator[Redis]:
    """A client of the tests' own; the run's keys are deleted at the end."""
    client = Redis.from_url(REDIS_URL)
    yield client
    keys = [key async for key in client.scan_iter(f"{KEY_PREFIX}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(scope="session")
def celery(services: None) -> Iterator[Celery]:
    """A plain Celery client: it pings the worker, tells it which queues to
    consume, and deletes queues."""
    client = celery_client(BROKER_URL, REDIS_URL, SERIALIZER, QUEUE_TYPE)
    yield client
    client.close()


@pytest.fixture(scope="session")
def worker(celery: Celery, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The render's `celery worker`, two processes on the run's queue; its node name."""
    node = f"engine-test-{RUN}@{socket.gethostname()}"
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    options = [
        *("--concurrency=2", "--loglevel=INFO", "--without-gossip", "--without-mingle"),
        "--without-heartbeat",
        f"--queues={QUEUE}",
    ]
    environment = {"CELERY_BROKER_URL": BROKER_URL, "CELERY_RESULT_BACKEND_URL": REDIS_URL}
    try:
        with (
            log.open("w") as output,
            celery_worker(
                celery, QUEUE, node, options, output=output, startup_timeout=20, **environment
            ),
        ):
            yield node
    except RuntimeError as error:
        pytest.fail(f"{error}:\n{log.read_text()}")


@pytest.fixture(scope="session")
def config(database: str) -> EngineConfig:
    """The run's settings, with timeouts short enough for tests that wait them out."""
    return EngineConfig(
        BROKER_URL,
        REDIS_URL,
        database,
        QUEUE,
        serializer=SERIALIZER,
        queue_type=QUEUE_TYPE,
        # Revocation marks live until a task's deadline: not long after the run.
        expires=60.0,
        lost_after=30.0,
        publish_timeout=1.0,
        redis_timeout=1.0,
        postgres_timeout=2.0,
        key_prefix=KEY_PREFIX,
    )


@pytest.fixture(scope="session")
async def task_engine(config: EngineConfig, worker: str) -> AsyncIterator[TaskEngine]:
    """The run's engine, sending to the worker's queue."""
    async with open_engine(config) as engine:
        yield engine


OpenEngine = Callable[..., AbstractAsyncContextManager[TaskEngine]]


@pytest.fixture
def engine_with(config: EngineConfig) -> OpenEngine:
    """Another engine of the run, with some settings changed: `async with
    engine_with(queue=..., wait_timeout=...) as engine:`."""

    def opened(**changes: Any) -> AbstractAsyncContextManager[TaskEngine]:
        return open_engine(dataclasses.replace(config, **changes))

    return opened


@pytest.fixture
def idle_queue(celery: Celery) -> Iterator[str]:
    """A queue of the test's own that no worker consumes (unless told to)."""
    name = f"{QUEUE}.idle.{uuid.uuid4().hex[:8]}"
    yield name
    delete_queue(celery, name)


@pytest.fixture
def owner() -> uuid.UUID:
    return uuid.uuid4()
