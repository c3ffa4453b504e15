"""Dependencies that fail on demand, for the fault tests and `make bench-faults`.

FaultProxy stands between the service and one dependency (PostgreSQL,
RabbitMQ, Redis) and behaves as that dependency would when it restarts
(every connection cut, new ones refused for a while), hangs (connections
accepted, nothing ever answered) or is slow to answer (requests reach it,
its answers are held). The real server behind it is untouched, so
other users of the machine's services see nothing. PrivateRedis is a
redis-server of the test's own, for a real restart. KillableWorker is a
Celery worker that can be SIGKILLed mid-task and replaced.

Each is started and stopped by its start() and stop(); `started` does both
around a block. Written here because the tool made for this, Toxiproxy, is a Go
program that neither PyPI nor Debian ships.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from celery import Celery

from testkit import WORKER_ROOT, delete_queue, worker_environment

Mode = Literal["up", "down", "silent", "slow"]


class Startable(Protocol):
    def start(self) -> object: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)


@contextmanager
def started(fault: S) -> Iterator[S]:
    """The proxy, Redis or worker, started for the block and stopped after it
    (also when it fails to start: what did start is stopped)."""
    try:
        fault.start()
        yield fault
    finally:
        fault.stop()


class FaultProxy:
    """A TCP proxy on 127.0.0.1:port in front of target_host:target_port.

    It runs on a thread and event loop of its own, so that it keeps forwarding
    while the test blocks (a synchronous Celery client, a sleep)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "up"
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        # Cleared while silent: everything waits on it.
        self._answering = asyncio.Event()
        self._answering.set()
        # Cleared while slow: the server's answers wait on it.
        self._replying = asyncio.Event()
        self._replying.set()
        # Writes passed on to the server: about one per request of a client
        # that waits for each answer (read from the test's thread).
        self.sent_to_server = 0

    def start(self) -> int:
        self._thread.start()
        self._call(self._listen())
        return self.port

    def up(self) -> None:
        self._call(self._switch("up"))

    def down(self) -> None:
        """As a restart begins: every open connection is cut, and new ones are
        closed as soon as they open, until up()."""
        self._call(self._switch("down"))

    def silent(self) -> None:
        """As a server that hangs (SIGSTOP): connections open, and nothing
        comes back on any of them until up()."""
        self._call(self._switch("silent"))

    def slow(self) -> None:
        """As a server whose answers are late: what clients send reaches it
        (it works on it at once), and its answers are delivered once up()."""
        self._call(self._switch("slow"))

    def stop(self) -> None:
        """Close the proxy: its port and every connection through it."""
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @property
    def is_down(self) -> bool:
        return self.mode == "down"

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _switch(self, mode: Mode) -> None:
        self.mode = mode
        if mode == "silent":
            self._answering.clear()
        else:
            self._answering.set()
        if mode == "slow":
            self._replying.clear()
        else:
            self._replying.set()
        if mode == "down":
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()

    async def _accept(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        if self.is_down:
            client.transport.abort()
            return
        self._writers.add(client)
        try:
            await self._answering.wait()
            if self.is_down:
                client.transport.abort()
                return
            server_reader, server = await asyncio.open_connection(*self.target)
        except OSError:
            client.transport.abort()
            return
        self._writers.add(server)
        pipes = [
            asyncio.create_task(self._pipe(client_reader, server, to_server=True)),
            asyncio.create_task(self._pipe(server_reader, client, to_server=False)),
        ]
        self._pipes.update(pipes)
        for pipe in pipes:
            pipe.add_done_callback(self._pipes.discard)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, to_server: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                # Silent: what was sent is held, and delivered once up again.
                await self._answering.wait()
                if not to_server:
                    await self._replying.wait()
                if self.is_down:
                    break
                writer.write(data)
                await writer.drain()
                if to_server:
                    self.sent_to_server += 1
        except OSError:
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _close(self) -> None:
        await self._switch("down")
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)


class PrivateRedis:
    """redis-server on a port of its own. Persistent, it keeps its keys in an
    append-only file across a restart, as compose.yaml's Redis does; if not,
    a restart loses every key, as the machine's Redis does."""

    def __init__(self, port: int, directory: Path, *, persistent: bool = True) -> None:
        self.port = port
        self.directory = directory
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def _answers(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as connection,
        ):
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
        return False

    def stop(self) -> None:
        """As `docker compose restart` stops it: SIGTERM, and Redis writes
        what it holds before it exits."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


class KillableWorker:
    """A worker on a queue, in a process group of its own, that can be
    SIGKILLed (its pool processes with it) and replaced."""

    def __init__(self, client: Celery, queue: str, log: Path) -> None:
        self.client = client
        self.queue = queue
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        # The node name of the worker running now (a new one after each start).
        self.node = ""

    def start(self, timeout: float = 30) -> None:
        node = self.node = f"killable-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        command = [
            *(sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker"),
            *(f"--hostname={node}", "--concurrency=2", "--without-gossip", "--without-mingle"),
        ]
        with self.log.open("a") as output:
            self.process = subprocess.Popen(
                command,
                cwd=WORKER_ROOT,
                env={**os.environ, **worker_environment(CELERY_TASK_QUEUE=self.queue)},
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self.client.control.ping(destination=[node], timeout=0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker {node} did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        """Stop it (a warm shutdown) and delete its queue."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
            self.process = None
        delete_queue(self.client, self.queue)
