"""Running the worker's tasks for a user: publish, wait or not, record, report."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from celery import states
from celery.canvas import Signature
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import commit_without_waiting_for_flush
from app.core.producer.catalog import Catalog
from app.core.producer.errors import BrokerUnavailableError, ResultBackendUnavailableError
from app.core.producer.publisher import Publisher
from app.core.producer.results import ResultListener
from app.core.producer.revoker import Revoker
from app.models import TaskRecord, User
from app.schemas.task import TaskReply
from app.services.racing import first_result, settle
from app.services.submissions import Submission, freeze
from app.services.task_states import FINAL, combine, ended_early

# What a route hands the runner: the signature to send, given its expiry.
SignatureBuilder = Callable[[datetime], Signature]


class TaskTimeoutError(Exception):
    def __init__(self, task_id: uuid.UUID, seconds: float) -> None:
        super().__init__(f"Task {task_id} did not finish within {seconds}s and was revoked")
        self.task_id = task_id


class TaskFailedError(Exception):
    """The task ended without a result: it failed, or was revoked meanwhile."""

    def __init__(self, reply: TaskReply) -> None:
        super().__init__(f"Task {reply.task_id} ended {reply.status}")
        self.reply = reply


class TaskRunner:
    """What the routes need to run tasks, shared by all requests of a process."""

    def __init__(
        self,
        catalog: Catalog,
        publisher: Publisher,
        listener: ResultListener,
        revoker: Revoker,
        wait_timeout: float,
        expires: float,
    ) -> None:
        self.catalog = catalog
        self.publisher = publisher
        self.listener = listener
        self.revoker = revoker
        self.wait_timeout = wait_timeout
        self.expires = expires

    def expiry(self, *, waiting: bool) -> datetime:
        """When an unstarted task becomes worthless: a waiting request gives up
        after wait_timeout, and a worker then discards the task instead of running it."""
        seconds = self.wait_timeout if waiting else self.expires
        return datetime.now(UTC) + timedelta(seconds=seconds)

    async def wait(
        self, session: AsyncSession, owner: User, name: str, build: SignatureBuilder
    ) -> TaskReply:
        """Publish build(expires), wait for the answer and record it; raise
        TaskFailedError or TaskTimeoutError when there is no result to give."""
        submission = freeze(build(self.expiry(waiting=True)))
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
                    await self.keep_record(session, submission.record(owner, name, pending))
                raise
            finally:
                settle(results)
                self.publisher.finish_in_background(publishing)
        reply = combine(submission.task_id, metas, submission.is_group)
        await self.keep_record(session, submission.record(owner, name, reply))
        self.listener.forget_soon(submission.all_ids)
        if reply.status != states.SUCCESS:
            raise TaskFailedError(reply)
        return reply

    async def give_up(
        self, session: AsyncSession, owner: User, name: str, submission: Submission
    ) -> None:
        """Stop a task nobody waits for any more, and record it: REVOKED once
        the workers were told, PENDING (to be read later) if they could not be."""
        try:
            await self.revoker.revoke(submission.all_ids)
            status = states.REVOKED
        except BrokerUnavailableError:
            status = states.PENDING
        reply = TaskReply(task_id=submission.task_id, status=status)
        await self.keep_record(session, submission.record(owner, name, reply))

    async def keep_record(self, session: AsyncSession, task: TaskRecord) -> None:
        """Commit the record of a task that waited for its answer. Its answer
        was already computed, so the commit need not wait for the disk."""
        session.add(task)
        await commit_without_waiting_for_flush(session)

    async def submit(
        self, session: AsyncSession, owner: User, name: str, build: SignatureBuilder
    ) -> uuid.UUID:
        """Publish build(expires) and record it; the caller comes back for the result."""
        submission = freeze(build(self.expiry(waiting=False)))
        task = submission.record(
            owner, name, TaskReply(task_id=submission.task_id, status=states.PENDING)
        )
        session.add(task)
        await session.flush()  # the record exists before the task can finish
        await self.publisher.publish(submission.signature)
        await session.commit()
        return submission.task_id

    async def refresh(self, session: AsyncSession, task: TaskRecord) -> TaskReply:
        """The task's current state; a final one is kept and Redis forgets it."""
        if task.status in FINAL:
            return task.reply()
        reply = combine(task.id, await self.listener.fetch(task.answer_ids), task.is_group)
        if reply.status not in FINAL:
            reply = ended_early(task.id, reply, await self.listener.fetch(task.all_ids))
        if reply.status in FINAL:
            await self._keep_final(session, task, reply)
        return reply

    async def conclude(
        self, session: AsyncSession, task_id: uuid.UUID, reply: TaskReply
    ) -> TaskReply:
        """Keep the final reply a follower saw, and give the one to show: the
        record's own, when it already had one (a DELETE or a reader came first)."""
        # Read afresh, not the session's copy from before, and locked until
        # the commit, so that another follower cannot slip in between.
        task = await session.get(TaskRecord, task_id, populate_existing=True, with_for_update=True)
        if task is None:  # its owner was deleted meanwhile
            await session.rollback()
            return reply
        if task.status in FINAL:
            await session.commit()
            return task.reply()
        await self._keep_final(session, task, reply)
        return reply

    async def _keep_final(self, session: AsyncSession, task: TaskRecord, reply: TaskReply) -> None:
        """Once the record holds the final reply, Redis need not keep the results."""
        task.keep(reply)
        await session.commit()
        await self.listener.forget(task.all_ids)

    async def revoke(self, session: AsyncSession, task: TaskRecord) -> TaskReply:
        """Revoke the tasks and stop those that run. Their results are not
        forgotten here: a worker stores REVOKED as it stops one, and that state
        expires with the worker's result_expires."""
        await self.revoker.revoke(task.all_ids)
        reply = TaskReply(task_id=task.id, status=states.REVOKED)
        task.keep(reply)
        await session.commit()
        return reply
