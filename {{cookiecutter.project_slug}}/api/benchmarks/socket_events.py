"""How fast and how many: task states pushed over WS /api/v1/ws/tasks/{task_id}.

Run from api/: `../.venv/bin/python -m benchmarks.socket_events` (part of `make
bench`). It starts the API (on a database of its own) and plays the worker
itself: a thread stores task states through Celery's Redis backend, the code a
worker runs, so that the moment each state is stored is known. In this one run:

  event latency: from the store to the client, over the WebSocket, against a
      plain redis-py subscriber on the same channel, both in this process;
  scale: N sockets open at once, each following its own task: the API's memory
      per socket, /api/v1/health's latency meanwhile, then every final state
      delivered.
"""

import argparse
import asyncio
import json
import resource
import secrets
import statistics
import time
import uuid
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from celery import states
from celery.backends.base import BaseKeyValueStoreBackend
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from websockets.asyncio.client import ClientConnection, connect

from app.core.config import Settings, get_settings
from app.core.producer.client import create_celery_client
from app.core.security import create_access_token
from app.models import TaskRecord, User
from benchmarks.http_load import LoadResult, run, run_load
from benchmarks.servers import api_process
from benchmarks.tasks_roundtrip import create_user
from testkit import database_beside, migrated_database, rss_bytes

PROGRESS = "PROGRESS"
Received = TypeVar("Received")
# (what, met, the figure it was judged on)
Verdict = tuple[str, bool, str]


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def create_records(database_url: str, count: int) -> tuple[User, list[str]]:
    """The benchmark's user and `count` single-task records of theirs, PENDING."""
    user = await create_user(database_url)
    task_ids = [str(uuid.uuid4()) for _ in range(count)]
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine)() as session:
            session.add_all(
                TaskRecord(
                    id=uuid.UUID(task_id),
                    owner_id=user.id,
                    name="bench",
                    answer_ids=[task_id],
                    all_ids=[task_id],
                )
                for task_id in task_ids
            )
            await session.commit()
    finally:
        await engine.dispose()
    return user, task_ids


async def open_following(url: str, token: str) -> ClientConnection:
    """A socket past authentication, with its first state (PENDING) read."""
    socket = await connect(url, open_timeout=30, ping_interval=None)
    await socket.send(json.dumps({"token": token}))
    first = json.loads(await socket.recv())
    assert first["status"] == states.PENDING, first
    return socket


class Worker:
    """Stores states as a worker does, from a thread of its own; remembers when."""

    def __init__(self, backend: BaseKeyValueStoreBackend) -> None:
        self._backend = backend
        self._pool = ThreadPoolExecutor(max_workers=1)

    def channel(self, task_id: str) -> bytes:
        """Where the backend publishes a task's states (and the key it stores them at)."""
        key: bytes = self._backend.get_key_for_task(task_id)
        return key

    async def store(self, task_id: str, state: str, result: object) -> float:
        """Store the state; the perf_counter() time just before it was stored."""

        def store() -> float:
            began = time.perf_counter()
            self._backend.store_result(task_id, result, state)
            return began

        return await asyncio.get_running_loop().run_in_executor(self._pool, store)


async def stamped(awaitable: Awaitable[Received]) -> tuple[Received, float]:
    """What the awaitable gives, and the perf_counter() time it gave it."""
    received = await awaitable
    return received, time.perf_counter()


async def event_latency(
    ws_base: str, token: str, worker: Worker, redis: Redis, task_id: str, events: int
) -> tuple[list[float], list[float]]:
    """Latency of each PROGRESS state: over the WebSocket, and to a plain subscriber."""
    pubsub = redis.pubsub()
    await pubsub.subscribe(worker.channel(task_id))
    await pubsub.get_message(timeout=5)  # the subscription's confirmation
    socket = await open_following(f"{ws_base}/{task_id}", token)
    over_socket, plain = [], []
    try:
        for done in range(1, events + 1):
            storing = asyncio.ensure_future(
                worker.store(task_id, PROGRESS, {"done": done, "total": events})
            )
            # Both clients read side by side on this loop, each stamped as its
            # message arrives.
            (message, plain_at), (reply, socket_at) = await asyncio.gather(
                stamped(pubsub.get_message(ignore_subscribe_messages=True, timeout=5)),
                stamped(socket.recv()),
            )
            stored = await storing
            assert message is not None, "the plain subscriber got nothing"
            assert json.loads(reply)["result"]["done"] == done, reply
            plain.append(plain_at - stored)
            over_socket.append(socket_at - stored)
            await asyncio.sleep(0.002)
        await worker.store(task_id, states.SUCCESS, events)
        assert json.loads(await socket.recv())["status"] == states.SUCCESS
    finally:
        await socket.close()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    return over_socket, plain


async def scale(
    base: str, ws_base: str, token: str, worker: Worker, task_ids: list[str], pid: int
) -> list[Verdict]:
    before = rss_bytes(pid)
    began = time.perf_counter()
    sockets: list[ClientConnection] = []
    for batch in range(0, len(task_ids), 100):  # a hundred handshakes at a time
        sockets += await asyncio.gather(
            *(open_following(f"{ws_base}/{t}", token) for t in task_ids[batch : batch + 100])
        )
    opened = time.perf_counter() - began
    await asyncio.sleep(1)  # let the API settle
    after = rss_bytes(pid)
    health = await run_load(f"{base}/api/v1/health", concurrency=1, duration=3.0)
    finals = 0
    try:
        await asyncio.gather(*(worker.store(t, states.SUCCESS, 1) for t in task_ids))

        async def final_of(socket: ClientConnection) -> bool:
            reply = json.loads(await socket.recv())
            await socket.wait_closed()
            return bool(reply["status"] == states.SUCCESS and socket.close_code == 1000)

        async with asyncio.timeout(60):
            finals = sum(await asyncio.gather(*(final_of(socket) for socket in sockets)))
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets))
    count = len(task_ids)
    print(f"Scale: {count} sockets open at once, each following its own task")
    print(f"  opened and authenticated in       {opened:.2f} s")
    print(
        f"  API memory: {before / 2**20:.1f} MiB before, {after / 2**20:.1f} MiB with them open:"
        f" {(after - before) / count / 1024:.1f} KiB per socket"
    )
    report_health(health)
    print(f"  final states delivered:           {finals} of {count}")
    p99 = health.percentile(0.99)
    return [
        ("every final state delivered", finals == count, f"{finals}/{count}"),
        ("health p99 < 50 ms with the sockets open", p99 < 0.05, milliseconds(p99)),
    ]


def report_health(health: LoadResult) -> None:
    print(
        f"  GET /api/v1/health meanwhile:     p50 {milliseconds(health.median)},"
        f" p99 {milliseconds(health.percentile(0.99))} ({health.count} requests)"
    )


async def measure(
    args: argparse.Namespace, settings: Settings, base: str, pid: int, token: str, ids: list[str]
) -> None:
    ws_base = base.replace("http://", "ws://") + "/api/v1/ws/tasks"
    celery = create_celery_client(settings)
    worker = Worker(celery.backend)
    redis = Redis.from_url(settings.CELERY_RESULT_BACKEND_URL)
    try:
        await event_latency(ws_base, token, worker, redis, ids[0], 20)  # warm up
        over_socket, plain = await event_latency(ws_base, token, worker, redis, ids[1], args.events)
        socket_p50, plain_p50 = statistics.median(over_socket), statistics.median(plain)
        print(f"Event latency, from the store to the client ({args.events} PROGRESS states):")
        print(
            f"  plain redis-py subscriber:  p50 {milliseconds(plain_p50)},"
            f" p99 {milliseconds(LoadResult(latencies=plain).percentile(0.99))}"
        )
        print(
            f"  over the WebSocket:         p50 {milliseconds(socket_p50)},"
            f" p99 {milliseconds(LoadResult(latencies=over_socket).percentile(0.99))}"
        )
        print(f"  ratio of p50s:              {socket_p50 / plain_p50:.2f}\n")
        verdicts = [
            (
                "socket p50 <= 2x plain subscriber p50",
                socket_p50 <= 2 * plain_p50,
                f"{socket_p50 / plain_p50:.2f}x",
            )
        ]
        verdicts += await scale(base, ws_base, token, worker, ids[2:], pid)
    finally:
        await redis.aclose()
        await asyncio.get_running_loop().run_in_executor(
            None, celery.backend.client.delete, *(celery.backend.get_key_for_task(t) for t in ids)
        )
        celery.close()
    print("\nTargets:")
    for label, met, value in verdicts:
        print(f"  {label:<44} {value:>10}  {'met' if met else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=300, help="states timed one by one")
    parser.add_argument("--sockets", type=int, default=1000, help="open at once")
    args = parser.parse_args()
    # Each socket is a file descriptor on both sides; children inherit the limit.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    configured = get_settings()
    secret = secrets.token_urlsafe(32)
    with migrated_database(
        database_beside(configured.POSTGRES_DATABASE_URL, "bench")
    ) as database_url:
        settings = configured.model_copy(
            update={"POSTGRES_DATABASE_URL": database_url, "SECRET_KEY": SecretStr(secret)}
        )
        user, task_ids = asyncio.run(create_records(database_url, args.sockets + 2))
        token = create_access_token(user.id, settings)
        environment = {
            "POSTGRES_DATABASE_URL": database_url,
            "SECRET_KEY": secret,
            # One user holds every socket here.
            "WS_SOCKETS_PER_USER": str(args.sockets + 10),
            # As `python -m app.serve` runs it (uvicorn's command line reads UVICORN_*).
            "UVICORN_WS_PER_MESSAGE_DEFLATE": "false",
        }
        with api_process(**environment) as (base, pid):
            run(measure(args, settings, base, pid, token, task_ids))


if __name__ == "__main__":
    main()
