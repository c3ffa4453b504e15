"""What the engine's tests share: signatures of the worker's `echo` task, the
one task every render has, in the four shapes the engine sends (a task, a chain, a
group and a chord, each with the result the worker gives for it); polling a
task until it ends; reading a record as PostgreSQL holds it."""

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from celery import chain, chord, group, signature
from celery.canvas import Signature

from taskengine import TaskEngine, TaskReply
from taskengine.states import FINAL

# The worker's name (WORKER_NAME in worker/worker/config.py) and the task's.
ECHO = "{{ cookiecutter.worker_name }}.echo"


def echo(*args: Any) -> Signature:
    """echo(text): the text back; echo() in a chain or a chord's body gets the
    previous result as its text."""
    return signature(ECHO, args=args)


@dataclass(frozen=True)
class Shape:
    name: str
    make: Callable[[], Signature]
    result: Any
    # How many messages go out, and how many chord sizes are written first.
    messages: int
    chords: int


SHAPES = [
    Shape("task", lambda: echo("hello"), "hello", messages=1, chords=0),
    # The first link's text is passed along to the last.
    Shape("chain", lambda: chain(echo("hello"), echo()), "hello", messages=1, chords=0),
    Shape("group", lambda: group(echo("a"), echo("b"), echo("c")), ["a", "b", "c"], 3, 0),
    # The body gets the header's results as its text.
    Shape("chord", lambda: chord([echo("a"), echo("b")], echo()), ["a", "b"], 2, 1),
]


async def until_final(
    engine: TaskEngine, owner_id: uuid.UUID, task_id: uuid.UUID, seconds: float = 15
) -> TaskReply:
    """status() until the task has ended."""
    deadline = time.monotonic() + seconds
    while True:
        reply = await engine.status(owner_id, task_id)
        if reply.status in FINAL:
            return reply
        assert time.monotonic() < deadline, f"task {task_id} still {reply.status}"
        await asyncio.sleep(0.05)


async def stored_row(db: asyncpg.Connection, task_id: uuid.UUID) -> dict[str, Any]:
    """The record's row, every column as PostgreSQL returns it."""
    found = await db.fetchrow("SELECT * FROM task_records WHERE id = $1", task_id)
    assert found is not None, f"no record {task_id}"
    return dict(found)
