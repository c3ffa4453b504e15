"""A light, steady load of waiting and /async tasks, for the fault tests and
`make bench-faults`: what every request got and when, and, once the load
stops, what became of every task the API recorded.

The tasks are echo tasks, the one task every render has; each request sends a
text of its own, so every result says which request it answers."""

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from app.api.v1.private.task_routes import TASKS_PATH
from app.api.v1.private.tasks import ECHO_ASYNC_PATH, ECHO_PATH

FINAL = {"SUCCESS", "FAILURE", "REVOKED", "LOST"}


@dataclass
class Answer:
    kind: str  # "wait" or "async"
    started: float  # time.monotonic()
    ended: float
    status: int  # the HTTP status; 0 when the request itself failed


@dataclass
class Settled:
    """What became of the recorded tasks."""

    records: int
    # SUCCESS with its own text.
    correct: int
    # Another request's text, a text twice, or a failure; a waiting request
    # answered with another text than its own counts here too.
    wrong: list[dict[str, object]]
    # Still not final at the deadline.
    unfinished: list[dict[str, object]]
    statuses: dict[str, int]

    def count(self, status: str) -> int:
        return self.statuses.get(status, 0)


@dataclass
class SteadyLoad:
    """`clients` loops, each sending a waiting task, then an /async one, then
    pausing; every text is sent once, so every result says whose it is."""

    client: httpx.AsyncClient
    headers: dict[str, str]
    clients: int = 4
    pause: float = 0.05
    answers: list[Answer] = field(default_factory=list)
    # Every text sent; and, for the requests that got the task's id back, whose
    # task has which text.
    sent: set[str] = field(default_factory=set)
    text_of: dict[str, str] = field(default_factory=dict)
    # Waiting requests answered 200 with another result than their own text.
    wrong_answers: list[dict[str, object]] = field(default_factory=list)
    _numbers: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1))

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._loop(stop) for _ in range(self.clients)))

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for kind, path in (("wait", ECHO_PATH), ("async", ECHO_ASYNC_PATH)):
                text = f"steady {next(self._numbers)}"
                self.sent.add(text)
                await self._send(kind, path, text)
            await asyncio.sleep(self.pause)

    async def _send(self, kind: str, path: str, text: str) -> None:
        started = time.monotonic()
        try:
            response = await self.client.post(path, json={"text": text}, headers=self.headers)
            status = response.status_code
        except httpx.HTTPError:
            status = 0
        self.answers.append(Answer(kind, started, time.monotonic(), status))
        if 200 <= status < 300:
            body = response.json()
            self.text_of[str(body["task_id"])] = text
            if kind == "wait" and body.get("result") != text:
                self.wrong_answers.append(body)

    async def settle(self, within: float, pause: float = 0.2) -> Settled:
        """Read every recorded task until all are final, or `within` seconds pass."""
        deadline = time.monotonic() + within
        replies: dict[str, dict[str, object]] = {}
        while True:
            for task_id in await self._recorded():
                if task_id in replies and replies[task_id]["status"] in FINAL:
                    continue
                response = await self.client.get(f"{TASKS_PATH}/{task_id}", headers=self.headers)
                if response.status_code == 200:
                    replies[task_id] = response.json()
            unfinished = [reply for reply in replies.values() if reply["status"] not in FINAL]
            if not unfinished or time.monotonic() > deadline:
                break
            await asyncio.sleep(pause)
        return self._judge(replies, unfinished)

    async def _recorded(self) -> list[str]:
        ids: list[str] = []
        while True:
            response = await self.client.get(
                TASKS_PATH, params={"offset": len(ids), "limit": 100}, headers=self.headers
            )
            response.raise_for_status()
            page = response.json()
            ids += [item["task_id"] for item in page["items"]]
            if len(ids) >= page["total"] or not page["items"]:
                return ids

    def _judge(
        self, replies: dict[str, dict[str, object]], unfinished: list[dict[str, object]]
    ) -> Settled:
        statuses: dict[str, int] = {}
        wrong_records, seen = [], set()
        for task_id, reply in replies.items():
            status = str(reply["status"])
            statuses[status] = statuses.get(status, 0) + 1
            if status == "SUCCESS":
                text = reply["result"]
                # Its own text where the request learnt the task's id (a task
                # whose request failed may still have been sent): one that was
                # sent, and no other task's.
                if (
                    not isinstance(text, str)
                    or text != self.text_of.get(task_id, text)
                    or text not in self.sent
                    or text in seen
                ):
                    wrong_records.append(reply)
                else:
                    seen.add(text)
            elif status == "FAILURE":
                wrong_records.append(reply)
        wrong_successes = sum(1 for reply in wrong_records if reply["status"] == "SUCCESS")
        correct = statuses.get("SUCCESS", 0) - wrong_successes
        wrong = [*self.wrong_answers, *wrong_records]
        return Settled(len(replies), correct, wrong, unfinished, statuses)

    def window(self, start: float, end: float) -> list[Answer]:
        """The answers to the requests started in [start, end)."""
        return [answer for answer in self.answers if start <= answer.started < end]

    def first_success_after(self, moment: float, kind: str) -> float | None:
        """Seconds from `moment` to the end of the first request of `kind`
        started after it that succeeded."""
        ends = [
            answer.ended
            for answer in self.answers
            if answer.kind == kind and answer.started >= moment and 200 <= answer.status < 300
        ]
        return min(ends) - moment if ends else None


@dataclass
class FaultRun:
    """One dependency broken and repaired under a steady load."""

    name: str
    load: SteadyLoad
    broken_at: float
    repaired_at: float
    stopped_at: float
    settled: Settled

    def failures(self, start: float, end: float) -> list[Answer]:
        return [answer for answer in self.load.window(start, end) if not 200 <= answer.status < 300]

    def recovery(self, kind: str) -> float | None:
        return self.load.first_success_after(self.repaired_at, kind)

    def summary(self) -> str:
        before = self.failures(0, self.broken_at)
        during = self.failures(self.broken_at, self.repaired_at)
        after = self.failures(self.repaired_at, self.stopped_at)
        codes = sorted({answer.status for answer in during})
        recovery = {kind: self.recovery(kind) for kind in ("wait", "async")}
        settled = self.settled
        return (
            f"{self.name}: {len(self.load.answers)} requests; failed before {len(before)},"
            f" during {len(during)} (codes {codes}), after {len(after)};"
            f" first 2xx after repair: wait {_seconds(recovery['wait'])},"
            f" async {_seconds(recovery['async'])};"
            f" tasks recorded {settled.records}: correct {settled.correct},"
            f" revoked {settled.count('REVOKED')}, lost {settled.count('LOST')},"
            f" wrong {len(settled.wrong)}, unfinished {len(settled.unfinished)}"
        )


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}s"


async def under_load(
    name: str,
    load: SteadyLoad,
    breaking: Callable[[], Awaitable[None] | None],
    repairing: Callable[[], Awaitable[None] | None],
    *,
    warm_up: float = 1.5,
    outage: float = 2.0,
    after: float = 5.0,
    settle_within: float = 20.0,
) -> FaultRun:
    """Run the load; break a dependency after `warm_up` seconds, repair it
    `outage` seconds later, keep the load `after` seconds more, then read
    every recorded task until it is final."""
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(stop))
    await asyncio.sleep(warm_up)
    broken_at = time.monotonic()
    await _maybe_await(breaking())
    await asyncio.sleep(outage)
    await _maybe_await(repairing())
    repaired_at = time.monotonic()
    await asyncio.sleep(after)
    stop.set()
    await running
    stopped_at = time.monotonic()
    settled = await load.settle(settle_within)
    return FaultRun(name, load, broken_at, repaired_at, stopped_at, settled)


async def _maybe_await(value: Awaitable[None] | None) -> None:
    if value is not None:
        await value
