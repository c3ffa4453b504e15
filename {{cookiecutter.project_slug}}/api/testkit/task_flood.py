"""A flood of /async tasks, each polled to its end, for the load runs
(`make bench-load`): how many came back right, and what the API's memory did.

`concurrency` clients each send a task, poll it every `poll_every` seconds
until it is final, then send the next, until `total` tasks were sent. They are
echo tasks, the one task every render has, each with a text of its own, so
every result says which task it belongs to. A refused
request (429, 503, a cut connection) is sent again after a pause: the flood
counts it, and the task is still owed.
"""

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from app.api.v1.private.task_routes import TASKS_PATH
from app.api.v1.private.tasks import ECHO_ASYNC_PATH
from testkit import rss_bytes
from testkit.lean_http import LeanConnection

FINAL = {"SUCCESS", "FAILURE", "REVOKED", "LOST"}
# A refused request waits this long before it is sent again.
RETRY_PAUSE = 0.5


def text(number: int) -> str:
    """What the nth task of a flood echoes."""
    return f"flood {number}"


@dataclass
class FloodReport:
    total: int
    seconds: float
    # The task's final state, by state; "UNFINISHED" when it never ended.
    ends: Counter[str]
    # Tasks that ended SUCCESS with another text than their own, by number.
    wrong: list[int]
    # Requests answered with something else than 2xx, by status (0: no answer).
    refused: Counter[int]
    rss_start: int
    rss_end: int

    @property
    def correct(self) -> int:
        return self.ends["SUCCESS"] - len(self.wrong)

    @property
    def rss_growth(self) -> float:
        """The API's resident memory at the end, against the start: 0.1 is 10% more."""
        return self.rss_end / self.rss_start - 1

    def summary(self, name: str) -> str:
        return (
            f"{name}: {self.total} tasks in {self.seconds:.0f} s"
            f" ({self.total / self.seconds:.0f} tasks/s); correct {self.correct},"
            f" ends {dict(sorted(self.ends.items()))}, wrong {len(self.wrong)};"
            f" refused requests {dict(sorted(self.refused.items())) or 0};"
            f" API RSS {self.rss_start / 2**20:.1f} -> {self.rss_end / 2**20:.1f} MiB"
            f" ({self.rss_growth:+.1%})"
        )


@dataclass
class TaskFlood:
    base: str
    headers: dict[str, str]
    api_pid: int
    total: int
    concurrency: int = 64
    poll_every: float = 0.25
    # A task not final this many seconds after it was accepted is UNFINISHED.
    give_up_after: float = 120.0
    ends: Counter[str] = field(default_factory=Counter)
    wrong: list[int] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    # Tasks sent so far; the nth task echoes text(n), so its result says which it is.
    _sent: int = 0
    _half_ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, halfway: Callable[[], Awaitable[None]] | None = None) -> FloodReport:
        """Send every task and read each to its end; `halfway` runs once half
        of them have ended, while the others keep going."""
        rss_start = rss_bytes(self.api_pid)
        started = time.monotonic()
        clients = [self._client() for _ in range(self.concurrency)]
        if halfway is not None:
            clients.append(self._at_half(halfway))
        await asyncio.gather(*clients)
        seconds = time.monotonic() - started
        return FloodReport(
            self.total,
            seconds,
            self.ends,
            self.wrong,
            self.refused,
            rss_start,
            rss_bytes(self.api_pid),
        )

    @property
    def in_flight(self) -> int:
        """Tasks sent (or being sent) and not ended yet."""
        return self._sent - self.ends.total()

    async def _at_half(self, halfway: Callable[[], Awaitable[None]]) -> None:
        await self._half_ended.wait()
        await halfway()

    async def _client(self) -> None:
        connection = LeanConnection(self.base)
        try:
            while self._sent < self.total:
                self._sent += 1
                number = self._sent
                task_id = await self._send(connection, number)
                await self._follow(connection, task_id, number)
        finally:
            connection.close()

    async def _send(self, connection: LeanConnection, number: int) -> str:
        body = json.dumps({"text": text(number)}).encode()
        while True:
            reply = await self._request(connection, "POST", ECHO_ASYNC_PATH, body, expected=202)
            if reply is not None:
                return str(reply["task_id"])
            await asyncio.sleep(RETRY_PAUSE)

    async def _follow(self, connection: LeanConnection, task_id: str, number: int) -> None:
        deadline = time.monotonic() + self.give_up_after
        while time.monotonic() < deadline:
            await asyncio.sleep(self.poll_every)
            reply = await self._request(connection, "GET", f"{TASKS_PATH}/{task_id}")
            if reply is None:
                continue
            if reply["status"] in FINAL:
                if reply["status"] == "SUCCESS" and reply["result"] != text(number):
                    self.wrong.append(number)
                self._ended(reply["status"])
                return
        self._ended("UNFINISHED")

    def _ended(self, state: str) -> None:
        self.ends[state] += 1
        if self.ends.total() >= self.total // 2:
            self._half_ended.set()

    async def _request(
        self,
        connection: LeanConnection,
        method: str,
        path: str,
        body: bytes = b"",
        expected: int = 200,
    ) -> Any:
        """The decoded reply; None, counted as refused, for any other answer."""
        headers = self.headers | ({"Content-Type": "application/json"} if body else {})
        try:
            status, content = await connection.request(method, path, headers, body)
        except ConnectionError:
            status, content = 0, b""
        if status != expected:
            self.refused[status] += 1
            return None
        return json.loads(content)
