"""How fast and how many: task states pushed over WS /api/v1/ws/tasks/{task_id}.

Run from api/: `../.venv/bin/python -m benchmarks.socket_events` (part of `make
bench`). It starts the API (on a database of its own), sends echo tasks
through a task engine of its own (TaskEngine.submit, as the API does: real
records, real messages) to a queue that no worker consumes, and plays the
worker itself: a thread stores the tasks' states through Celery's Redis
backend, the code a worker runs, so that the moment each state is stored is
known. In this one run:

  event latency: a chain of echo tasks is followed over the WebSocket, and the
      links end one by one: each end is a PROGRESS state (links done / all),
      timed from the store to the client, against a plain redis-py subscriber
      of the links' channels, both in this process;
  scale: N sockets open at once, each following its own echo task: the API's
      memory per socket, /api/v1/health's latency meanwhile, then every final
      state (SUCCESS, with the task's own text) delivered.
"""

import argparse
import asyncio
import json
import resource
import statistics
import time
import uuid
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from celery import Celery, chain, signature, states
from celery.backends.base import BaseKeyValueStoreBackend
from celery.canvas import Signature
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from app.api.v1.private.tasks import ECHO
from app.core.config import QUEUE_TYPE, TASK_SERIALIZER, Settings
from benchmarks.http_load import LoadResult, run, run_load
from benchmarks.servers import api_process
from benchmarks.service import bench_service, bench_user
from taskengine import TaskEngine, open_engine
from testkit import celery_client, delete_queue, rss_bytes

PROGRESS = "PROGRESS"
Received = TypeVar("Received")
# (what, met, the figure it was judged on)
Verdict = tuple[str, bool, str]


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


@dataclass
class Sent:
    """A task sent through the engine: the id its owner follows, and the
    echo tasks it is made of, in the order they run, with their texts."""

    task_id: str
    links: list[tuple[str, str]]


def echo(text: str) -> tuple[Signature, str]:
    """An echo task with an id of our own (so the benchmark knows every link
    of a chain), immutable (a chain's link does not get the previous result)."""
    task_id = str(uuid.uuid4())
    return signature(ECHO, args=(text,), task_id=task_id, immutable=True), task_id


async def send_chain(engine: TaskEngine, owner_id: uuid.UUID, links: int) -> Sent:
    texts = [f"link {number}" for number in range(links)]
    made = [echo(text) for text in texts]
    task_id = await engine.submit(owner_id, "echo-chain", chain(task for task, _ in made))
    sent = Sent(
        str(task_id), [(link_id, text) for (_, link_id), text in zip(made, texts, strict=True)]
    )
    assert sent.task_id == sent.links[-1][0], "a chain answers with its last link"
    return sent


async def send_echoes(engine: TaskEngine, owner_id: uuid.UUID, count: int) -> list[Sent]:
    """`count` echo tasks, a hundred at a time."""

    async def one(number: int) -> Sent:
        task, task_id = echo(f"echo {number}")
        sent_id = await engine.submit(owner_id, "echo", task)
        return Sent(str(sent_id), [(task_id, f"echo {number}")])

    sent: list[Sent] = []
    for batch in range(0, count, 100):
        sent += await asyncio.gather(*(one(n) for n in range(batch, min(batch + 100, count))))
    return sent


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
    ws_base: str, token: str, worker: Worker, redis: Redis, sent: Sent
) -> tuple[list[float], list[float]]:
    """Latency of each link's end but the last, a PROGRESS state: over the
    WebSocket, and to a plain subscriber of the links' channels."""
    pubsub = redis.pubsub()
    channels = [worker.channel(link_id) for link_id, _ in sent.links]
    await pubsub.subscribe(*channels)
    confirmed = 0
    while confirmed < len(channels):  # one confirmation per channel
        message = await pubsub.get_message(timeout=5)
        assert message is not None, "Redis did not confirm the subscriptions"
        confirmed += message["type"] == "subscribe"
    socket = await open_following(f"{ws_base}/{sent.task_id}", token)
    *ending, (last_id, last_text) = sent.links
    over_socket, plain = [], []
    try:
        for done, (link_id, text) in enumerate(ending, start=1):
            storing = asyncio.ensure_future(worker.store(link_id, states.SUCCESS, text))
            # Both clients read side by side on this loop, each stamped as its
            # message arrives.
            (message, plain_at), (reply, socket_at) = await asyncio.gather(
                stamped(pubsub.get_message(ignore_subscribe_messages=True, timeout=5)),
                stamped(socket.recv()),
            )
            stored = await storing
            assert message is not None, "the plain subscriber got nothing"
            progress = {"done": done, "total": len(sent.links)}
            state = json.loads(reply)
            assert (state["status"], state["result"]) == (PROGRESS, progress), reply
            plain.append(plain_at - stored)
            over_socket.append(socket_at - stored)
            await asyncio.sleep(0.002)
        await worker.store(last_id, states.SUCCESS, last_text)
        final = json.loads(await socket.recv())
        assert (final["status"], final["result"]) == (states.SUCCESS, last_text), final
    finally:
        await socket.close()
        # redis types aclose() from 8.2 on: the ignore is for the versions before.
        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
    return over_socket, plain


async def scale(
    base: str, ws_base: str, token: str, worker: Worker, sent: list[Sent], pid: int
) -> list[Verdict]:
    before = rss_bytes(pid)
    began = time.perf_counter()
    sockets: list[ClientConnection] = []
    for batch in range(0, len(sent), 100):  # a hundred handshakes at a time
        sockets += await asyncio.gather(
            *(
                open_following(f"{ws_base}/{task.task_id}", token)
                for task in sent[batch : batch + 100]
            )
        )
    opened = time.perf_counter() - began
    await asyncio.sleep(1)  # let the API settle
    after = rss_bytes(pid)
    health = await run_load(f"{base}/api/v1/health", concurrency=1, duration=3.0)
    finals = 0
    try:
        await asyncio.gather(
            *(
                worker.store(link_id, states.SUCCESS, text)
                for task in sent
                for link_id, text in task.links
            )
        )

        async def final_of(socket: ClientConnection, task: Sent) -> bool:
            reply = json.loads(await socket.recv())
            await socket.wait_closed()
            ((_, text),) = task.links
            return bool(
                (reply["status"], reply["result"]) == (states.SUCCESS, text)
                and socket.close_code == 1000
            )

        async with asyncio.timeout(60):
            delivered = await asyncio.gather(*map(final_of, sockets, sent))
            finals = sum(delivered)
    finally:
        await asyncio.gather(*(socket.close() for socket in sockets))
    count = len(sent)
    print(f"Scale: {count} sockets open at once, each following its own echo task")
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


async def send_tasks(
    settings: Settings, owner_id: uuid.UUID, events: int, sockets: int
) -> list[Sent]:
    """Through a task engine of this process: a chain of 21 links (the warm-up),
    one of `events` + 1 links, and `sockets` echo tasks."""
    async with open_engine(settings.engine_config()) as engine:
        warm_up = await send_chain(engine, owner_id, 21)
        timed = await send_chain(engine, owner_id, events + 1)
        return [warm_up, timed, *await send_echoes(engine, owner_id, sockets)]


async def measure(
    args: argparse.Namespace,
    celery: Celery,
    settings: Settings,
    base: str,
    pid: int,
    token: str,
    owner_id: uuid.UUID,
) -> None:
    ws_base = base.replace("http://", "ws://") + "/api/v1/ws/tasks"
    worker = Worker(celery.backend)
    redis = Redis.from_url(settings.CELERY_RESULT_BACKEND_URL)
    sent: list[Sent] = []
    try:
        sent = await send_tasks(settings, owner_id, args.events, args.sockets)
        warm_up, timed, *singles = sent
        await event_latency(ws_base, token, worker, redis, warm_up)
        over_socket, plain = await event_latency(ws_base, token, worker, redis, timed)
        socket_p50, plain_p50 = statistics.median(over_socket), statistics.median(plain)
        print(
            f"Event latency, from the store to the client ({args.events} PROGRESS states:"
            f" the links of a chain of {args.events + 1} echo tasks ending one by one):"
        )
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
        verdicts += await scale(base, ws_base, token, worker, singles, pid)
    finally:
        await redis.aclose()
        keys = [celery.backend.get_key_for_task(link) for task in sent for link, _ in task.links]
        if keys:
            await asyncio.get_running_loop().run_in_executor(
                None, celery.backend.client.delete, *keys
            )
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

    # Where the tasks go: no worker consumes it, the benchmark plays the worker.
    queue = f"bench.unconsumed.{uuid.uuid4().hex[:8]}"
    # One user sends every task here (through this process's task engine).
    sending = {"CELERY_TASK_QUEUE": queue, "TASKS_IN_FLIGHT_PER_USER": args.sockets + 100}
    with bench_service(**sending) as (settings, environment):
        user, token = bench_user(settings)
        # One user holds every socket here.
        environment["WS_SOCKETS_PER_USER"] = str(args.sockets + 10)
        # As `python -m commands.serve` runs it (uvicorn's command line reads UVICORN_*).
        environment["UVICORN_WS_PER_MESSAGE_DEFLATE"] = "false"
        celery = celery_client(
            settings.CELERY_BROKER_URL,
            settings.CELERY_RESULT_BACKEND_URL,
            TASK_SERIALIZER,
            QUEUE_TYPE,
        )
        try:
            with api_process(**environment) as (base, pid):
                run(measure(args, celery, settings, base, pid, token, user.id))
        finally:
            delete_queue(celery, queue)
            celery.close()


if __name__ == "__main__":
    main()
