"""Running the worker's tasks for a user: publish, wait or not, record, report."""

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import states
from celery.canvas import Signature
from celery.result import AsyncResult, GroupResult, ResultBase
from fastapi.encoders import jsonable_encoder
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.celery.catalog import Catalog
from app.core.celery.publisher import BrokerUnavailableError, Publisher
from app.core.celery.results import Meta, ResultBackendUnavailableError, ResultListener
from app.models import TaskRecord, User
from app.schemas.task import TaskError, TaskReply

# Unfinished states in the order a task goes through them: a group reports its
# least advanced member's state until all of them are done. PROGRESS is what
# the worker's long_running task reports while it works.
PROGRESS = "PROGRESS"
IN_FLIGHT_ORDER = {
    state: rank
    for rank, state in enumerate(
        (states.PENDING, states.RECEIVED, states.STARTED, states.RETRY, PROGRESS)
    )
}
FINAL = frozenset(states.READY_STATES)


class TaskTimeoutError(Exception):
    def __init__(self, task_id: uuid.UUID, seconds: float) -> None:
        super().__init__(f"Task {task_id} did not finish within {seconds}s and was revoked")
        self.task_id = task_id


class TaskFailedError(Exception):
    """The task ended without a result: it failed, or was revoked meanwhile."""

    def __init__(self, reply: TaskReply) -> None:
        super().__init__(f"Task {reply.task_id} ended {reply.status}")
        self.reply = reply


@dataclass
class Submission:
    """A frozen signature: every id is known before anything is published."""

    signature: Signature
    task_id: uuid.UUID
    is_group: bool
    answer_ids: list[str]
    related_ids: list[str]


def freeze(signature: Signature) -> Submission:
    result = signature.freeze()
    is_group = isinstance(result, GroupResult)
    answer = list(result.results) if is_group else [result]
    return Submission(
        signature=signature,
        task_id=uuid.UUID(result.id),
        is_group=is_group,
        answer_ids=[item.id for item in answer],
        related_ids=every_id(result),
    )


def every_id(result: ResultBase) -> list[str]:
    """The ids of a result, its group members and its parents (chain, chord)."""
    found: list[str] = []
    pending: list[ResultBase | None] = [result]
    while pending:
        item = pending.pop()
        if item is None:
            continue
        if isinstance(item, GroupResult):
            pending.extend(item.results)
        elif isinstance(item, AsyncResult):
            found.append(item.id)
        pending.append(item.parent)
    return found


async def first_result(
    publishing: "asyncio.Future[None]", results: "asyncio.Future[list[Meta]]"
) -> list[Meta | None]:
    """The results, as soon as they are there. The broker's confirm is only
    awaited while there are none: results prove the message arrived, and a
    failed publish (no confirm, no broker) ends the wait at once."""
    racing: set[asyncio.Future[Any]] = {publishing, results}
    done, _ = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
    if results not in done:
        publishing.result()  # raises BrokerUnavailableError
    return list(await results)


def settle(future: "asyncio.Future[Any]") -> None:
    """Cancel a future that is still pending; consume the error of one that
    failed (nobody awaits it any more, and asyncio would log it as lost)."""
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()


def describe(error: object) -> TaskError:
    """The exception a task raised, by type and message; never its traceback."""
    return TaskError(type=type(error).__name__, message=str(error))


def combine(task_id: uuid.UUID, metas: list[Meta | None], is_group: bool) -> TaskReply:
    """One reply for the tasks that make an answer."""
    present = [meta for meta in metas if meta is not None]
    failed = next((meta for meta in present if meta["status"] == states.FAILURE), None)
    if failed is not None:
        return TaskReply(task_id=task_id, status=states.FAILURE, error=describe(failed["result"]))
    if any(meta["status"] == states.REVOKED for meta in present):
        return TaskReply(task_id=task_id, status=states.REVOKED)
    if len(present) < len(metas):
        return TaskReply(task_id=task_id, status=states.PENDING)
    if all(meta["status"] == states.SUCCESS for meta in present):
        values = [jsonable_encoder(meta["result"]) for meta in present]
        return TaskReply(
            task_id=task_id, status=states.SUCCESS, result=values if is_group else values[0]
        )
    unfinished = [meta["status"] for meta in present if meta["status"] != states.SUCCESS]
    status = min(unfinished, key=lambda state: IN_FLIGHT_ORDER.get(state, len(IN_FLIGHT_ORDER)))
    progress = present[0]["result"] if status == PROGRESS and not is_group else None
    return TaskReply(task_id=task_id, status=status, result=jsonable_encoder(progress))


def record(owner: User, name: str, submission: Submission, reply: TaskReply) -> TaskRecord:
    task = TaskRecord(
        id=submission.task_id,
        owner_id=owner.id,
        name=name,
        is_group=submission.is_group,
        answer_ids=submission.answer_ids,
        related_ids=submission.related_ids,
    )
    keep(task, reply)
    return task


def keep(task: TaskRecord, reply: TaskReply) -> None:
    task.status = reply.status
    task.result = reply.result
    task.error_type = reply.error.type if reply.error else None
    task.error_message = reply.error.message if reply.error else None


def reply_from(task: TaskRecord) -> TaskReply:
    error = (
        TaskError(type=task.error_type, message=task.error_message or "")
        if task.error_type
        else None
    )
    return TaskReply(task_id=task.id, status=task.status, result=task.result, error=error)


class TaskRunner:
    """What the routes need to run tasks, shared by all requests of a process."""

    def __init__(
        self,
        catalog: Catalog,
        publisher: Publisher,
        listener: ResultListener,
        wait_timeout: float,
        expires: float,
    ) -> None:
        self.catalog = catalog
        self.publisher = publisher
        self.listener = listener
        self.wait_timeout = wait_timeout
        self.expires = expires

    def expiry(self, *, waiting: bool) -> datetime:
        """When an unstarted task becomes worthless: a waiting request gives up
        after wait_timeout, and a worker then discards the task instead of running it."""
        seconds = self.wait_timeout if waiting else self.expires
        return datetime.now(UTC) + timedelta(seconds=seconds)

    async def wait(
        self,
        session: AsyncSession,
        owner: User,
        name: str,
        build: Callable[..., Signature],
        *args: object,
    ) -> TaskReply:
        """Publish build(*args), wait for the answer and record it; raise
        TaskFailedError or TaskTimeoutError when there is no result to give."""
        submission = freeze(build(*args, expires=self.expiry(waiting=True)))
        # End the read transaction of authentication: no database connection
        # stays checked out while the task runs.
        await session.commit()
        async with self.listener.watching(submission.answer_ids) as watch:
            publishing = asyncio.ensure_future(self.publisher.publish(submission.signature))
            results = asyncio.ensure_future(watch.results())
            try:
                async with asyncio.timeout(self.wait_timeout):
                    metas = await first_result(publishing, results)
            except TimeoutError:
                await self.give_up(session, owner, name, submission)
                raise TaskTimeoutError(submission.task_id, self.wait_timeout) from None
            except ResultBackendUnavailableError:
                if publishing.done() and publishing.exception() is None:
                    # The task was sent and runs: keep its record, it can be read later.
                    pending = TaskReply(task_id=submission.task_id, status=states.PENDING)
                    await self.keep_record(session, record(owner, name, submission, pending))
                raise
            finally:
                settle(results)
                self.publisher.finish_in_background(publishing)
        reply = combine(submission.task_id, metas, submission.is_group)
        await self.keep_record(session, record(owner, name, submission, reply))
        self.listener.forget_soon(submission.related_ids)
        if reply.status != states.SUCCESS:
            raise TaskFailedError(reply)
        return reply

    async def give_up(
        self, session: AsyncSession, owner: User, name: str, submission: "Submission"
    ) -> None:
        """Stop a task nobody waits for any more, and record it: REVOKED once
        the workers were told, PENDING (to be read later) if they could not be."""
        try:
            await self.publisher.revoke(submission.related_ids)
            status = states.REVOKED
        except BrokerUnavailableError:
            status = states.PENDING
        reply = TaskReply(task_id=submission.task_id, status=status)
        await self.keep_record(session, record(owner, name, submission, reply))

    async def keep_record(self, session: AsyncSession, task: TaskRecord) -> None:
        """Commit the record of a task that waited for its answer.

        The commit does not wait for PostgreSQL to flush its log to disk
        (synchronous_commit off, for this transaction only): that flush is the
        slowest part of a short task's round trip. A crash of the database
        within a fraction of a second could lose the record, never corrupt
        anything; the answer itself was already computed.
        """
        session.add(task)
        await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        await session.commit()

    async def submit(
        self,
        session: AsyncSession,
        owner: User,
        name: str,
        build: Callable[..., Signature],
        *args: object,
    ) -> uuid.UUID:
        """Publish build(*args) and record it; the caller comes back for the result."""
        submission = freeze(build(*args, expires=self.expiry(waiting=False)))
        task = record(
            owner, name, submission, TaskReply(task_id=submission.task_id, status=states.PENDING)
        )
        session.add(task)
        await session.flush()  # the record exists before the task can finish
        await self.publisher.publish(submission.signature)
        await session.commit()
        return submission.task_id

    async def refresh(self, session: AsyncSession, task: TaskRecord) -> TaskReply:
        """The task's current state; a final one is kept and Redis forgets it."""
        if task.status in FINAL:
            return reply_from(task)
        reply = combine(task.id, await self.listener.fetch(task.answer_ids), task.is_group)
        if reply.status not in FINAL:
            reply = self.ended_early(task, reply, await self.listener.fetch(task.related_ids))
        if reply.status in FINAL:
            keep(task, reply)
            await session.commit()
            await self.listener.forget(task.related_ids)
        return reply

    @staticmethod
    def ended_early(task: TaskRecord, reply: TaskReply, related: list[Meta | None]) -> TaskReply:
        """A chain whose first link failed or was revoked never runs its last
        one: the answer's own state would stay PENDING forever."""
        for meta in related:
            if meta is not None and meta["status"] in (states.FAILURE, states.REVOKED):
                return combine(task.id, [meta], is_group=False)
        return reply

    async def revoke(self, session: AsyncSession, task: TaskRecord) -> TaskReply:
        """Revoke the tasks and stop those that run. Their results are not
        forgotten here: a worker stores REVOKED as it stops one, and that state
        expires with the worker's result_expires."""
        await self.publisher.revoke(task.related_ids)
        reply = TaskReply(task_id=task.id, status=states.REVOKED)
        keep(task, reply)
        await session.commit()
        return reply
