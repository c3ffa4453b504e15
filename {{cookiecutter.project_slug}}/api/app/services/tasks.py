"""Running the worker's tasks for a user: publish, wait or not, record, report."""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from celery import states
from celery.canvas import Signature
from sqlalchemy import inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import make_transient_to_detached

from app.core.db import commit_without_waiting_for_flush, is_unavailable, open_session
from app.core.producer.catalog import Catalog
from app.core.producer.errors import BrokerUnavailableError, ResultBackendUnavailableError
from app.core.producer.publisher import Publisher
from app.core.producer.results import Meta, ResultListener
from app.core.producer.revoker import Revoker
from app.models import TaskRecord
from app.schemas.task import TaskReply
from app.services.account_cache import Account
from app.services.in_flight import InFlightLimit, TooManyTasksError
from app.services.racing import first_result, settle
from app.services.record_writer import RecordWriter
from app.services.submissions import Submission, freeze
from app.services.task_states import FINAL, combine, ended_early, verdict

logger = logging.getLogger(__name__)

# A record whose commit failed is marked as never sent once the database
# answers: tried every WITHDRAW_PAUSE seconds, for about ten minutes.
WITHDRAW_PAUSE = 1.0
WITHDRAW_ATTEMPTS = 600

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
        in_flight: InFlightLimit,
        sessionmaker: async_sessionmaker[AsyncSession],
        records: RecordWriter,
        wait_timeout: float,
        expires: float,
        lost_after: float,
    ) -> None:
        self.catalog = catalog
        self.publisher = publisher
        self.listener = listener
        self.revoker = revoker
        self.in_flight = in_flight
        self.sessionmaker = sessionmaker
        self.records = records
        # Records being marked as never sent, in the background.
        self._background: set[asyncio.Task[None]] = set()
        self.wait_timeout = wait_timeout
        self.expires = expires
        self.lost_after = timedelta(seconds=lost_after)

    def expiry(self, *, waiting: bool) -> datetime:
        """When an unstarted task becomes worthless: a waiting request gives up
        after wait_timeout, and a worker then discards the task instead of running it."""
        seconds = self.wait_timeout if waiting else self.expires
        return datetime.now(UTC) + timedelta(seconds=seconds)

    def deadline(self, task: TaskRecord) -> datetime:
        """When a record without a final state is declared LOST."""
        expires_at = task.expires_at or datetime.now(UTC) + timedelta(seconds=self.expires)
        return expires_at + self.lost_after

    async def wait(self, owner: Account, name: str, build: SignatureBuilder) -> TaskReply:
        """Publish build(expires), wait for the answer and record it; raise
        TaskFailedError or TaskTimeoutError when there is no result to give."""
        submission, task = self._prepare(owner, name, build, waiting=True)
        await self._admit(task)
        async with (
            self._counted_out_unless_recorded(task),
            self.listener.watching(submission.answer_ids) as watch,
        ):
            # Recorded before it is sent: no task runs without its owner's record.
            await self._record(task, durable=False)
            try:
                # Sent once Redis confirmed the subscription (it did so
                # while the record was written): its result cannot be missed.
                await watch.confirmed()
            except BaseException:  # no confirmation, or the request went away
                # Never sent: the record says so, and the task leaves the count.
                self._withdraw_later(task.id)
                self.in_flight.leave_soon(task.owner_id, [task.id])
                raise
            publishing = asyncio.ensure_future(self.publisher.publish(submission.signature))
            results = asyncio.ensure_future(watch.results())
            try:
                async with asyncio.timeout(self.wait_timeout):
                    metas = await first_result(publishing, results)
            except TimeoutError:
                async with self._session_with(task) as session:
                    reply = await self.give_up(session, task)
                if reply.status not in FINAL or reply.status == states.REVOKED:
                    raise TaskTimeoutError(submission.task_id, self.wait_timeout) from None
                metas = None  # it ended just in time: its own reply
            except BrokerUnavailableError:
                async with self._session_with(task) as session:
                    await self.withdraw(session, task)
                raise
            except ResultBackendUnavailableError:
                # The record stays PENDING, to be read later, if the task went out.
                if not await published(publishing):
                    async with self._session_with(task) as session:
                        await self.withdraw(session, task)
                raise
            finally:
                settle(results)
                self.publisher.finish_in_background(publishing)
        if metas is not None:
            reply = combine(submission.task_id, metas, submission.is_group)
            if await self.records.keep_end(task, reply):
                self._end_kept(task)
        if reply.status != states.SUCCESS:
            raise TaskFailedError(reply)
        return reply

    async def submit(self, owner: Account, name: str, build: SignatureBuilder) -> uuid.UUID:
        """Record build(expires), then publish it; the caller comes back for the result."""
        submission, task = self._prepare(owner, name, build, waiting=False)
        await self._admit(task)
        async with self._counted_out_unless_recorded(task):
            # The record exists before the task can finish.
            await self._record(task, durable=True)
        try:
            await self.publisher.publish(submission.signature)
        except BrokerUnavailableError:
            async with self._session_with(task) as session:
                await self.withdraw(session, task)
            raise
        return submission.task_id

    def _prepare(
        self, owner: Account, name: str, build: SignatureBuilder, *, waiting: bool
    ) -> tuple[Submission, TaskRecord]:
        expires_at = self.expiry(waiting=waiting)
        submission = freeze(build(expires_at))
        pending = TaskReply(task_id=submission.task_id, status=states.PENDING)
        return submission, submission.record(owner, name, pending, expires_at)

    async def _admit(self, task: TaskRecord) -> None:
        """Count the task among its owner's tasks in flight, or raise
        TooManyTasksError: once the tasks that ended unread are counted out."""
        deadline = self.deadline(task)
        if await self.in_flight.enter(task.owner_id, task.id, deadline):
            return
        async with self._session_with() as session:
            await self._count_out_ended(session, task.owner_id)
        if not await self.in_flight.enter(task.owner_id, task.id, deadline):
            raise TooManyTasksError(self.in_flight.limit)

    async def _count_out_ended(self, session: AsyncSession, owner_id: uuid.UUID) -> None:
        """Count out the owner's tasks whose end is known: kept in their
        record, or stored in Redis and not read yet. One query, one read."""
        ids = await self.in_flight.members(owner_id)
        found = await session.scalars(select(TaskRecord).where(TaskRecord.id.in_(ids)))
        records = {task.id: task for task in found}
        unread = [task for task in records.values() if task.status not in FINAL]
        every_id = [task_id for task in unread for task_id in task.all_ids]
        stored = dict(zip(every_id, await self.listener.fetch(every_id), strict=True))
        ended = [
            task_id
            for task_id in ids
            # No record: it was never committed, or its owner deleted it.
            if task_id not in records
            or records[task_id].status in FINAL
            or self._reply(records[task_id], stored).status in FINAL
        ]
        await self.in_flight.leave(owner_id, ended)

    @contextlib.asynccontextmanager
    async def _counted_out_unless_recorded(self, task: TaskRecord) -> AsyncIterator[None]:
        """A task that fails before its record is committed never runs: it
        leaves the count at once (afterwards, its end makes it leave)."""
        try:
            yield
        except BaseException:
            if inspect(task).transient:
                self.in_flight.leave_soon(task.owner_id, [task.id])
            raise

    async def _record(self, task: TaskRecord, *, durable: bool) -> None:
        """Commit a new record, before its tasks are sent; then it is known
        as a row, which a revocation or a failed publish updates."""
        writing = self.records.add(task, durable=durable)
        try:
            # Shielded: a request that goes away leaves its row in the batch.
            await asyncio.shield(writing)
        except BaseException:
            # The row may be written all the same (the batch goes on, or the
            # connection was lost after the commit went out). Its tasks will
            # never be sent: once the write has ended and the database
            # answers, the record, if there is one, says so.
            writing.add_done_callback(lambda ended: self._withdraw_after(ended, task.id))
            raise
        make_transient_to_detached(task)

    def _withdraw_after(self, writing: "asyncio.Future[None]", task_id: uuid.UUID) -> None:
        """Once the write of a record whose tasks will not be sent has ended,
        however it ended, mark the record (if there is one) as never sent."""
        if not writing.cancelled():
            writing.exception()  # this request no longer waits for it
        self._withdraw_later(task_id)

    @contextlib.asynccontextmanager
    async def _session_with(self, *tasks: TaskRecord) -> AsyncIterator[AsyncSession]:
        """A session, holding these recorded tasks, for the few paths that
        read or update records: the usual round trip needs none."""
        async with open_session(self.sessionmaker) as session:
            session.add_all(tasks)
            yield session

    def _withdraw_later(self, task_id: uuid.UUID) -> None:
        withdrawal = asyncio.create_task(self._mark_withdrawn(task_id))
        self._background.add(withdrawal)
        withdrawal.add_done_callback(self._background.discard)

    async def _mark_withdrawn(self, task_id: uuid.UUID) -> None:
        """Mark the record revoked, if it exists, trying for a while: its
        tasks were never sent, so verdict() calls it REVOKED."""
        for _ in range(WITHDRAW_ATTEMPTS):
            try:
                async with self.sessionmaker() as session:
                    await session.execute(
                        update(TaskRecord)
                        .where(TaskRecord.id == task_id, TaskRecord.revoked_at.is_(None))
                        .values(revoked_at=datetime.now(UTC))
                    )
                    await session.commit()
                return
            except Exception as error:
                if not is_unavailable(error):
                    logger.exception("Could not mark task %s as never sent", task_id)
                    return
            await asyncio.sleep(WITHDRAW_PAUSE)
        logger.error("Task %s may be recorded though never sent: LOST at its deadline", task_id)

    async def close(self) -> None:
        """Write what is queued; stop what still waits for the database: the
        process is ending."""
        await self.records.close()
        for withdrawal in list(self._background):
            withdrawal.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.in_flight.close()

    async def give_up(self, session: AsyncSession, task: TaskRecord) -> TaskReply:
        """Revoke a task nobody waits for any more; its state now (it may
        have ended meanwhile)."""
        with contextlib.suppress(ResultBackendUnavailableError):
            await self._mark_revoked(session, task)
        try:
            return await self.refresh(session, task)
        except ResultBackendUnavailableError:
            return task.reply()

    async def withdraw(self, session: AsyncSession, task: TaskRecord) -> None:
        """A publish failed, maybe after part of a workflow went out: revoke
        all of it, so that no task of it runs, and keep the record saying so."""
        try:
            await self._mark_revoked(session, task)
        except ResultBackendUnavailableError:
            # Nothing could be revoked: whatever went out runs, and the record
            # tells how it ends.
            logger.error("Task %s was published in part and could not be revoked", task.id)
            return
        with contextlib.suppress(ResultBackendUnavailableError):
            await self.refresh(session, task)

    async def revoke(self, session: AsyncSession, task: TaskRecord) -> TaskReply:
        """Revoke the tasks: none of them starts from now on, and a long one
        stops between its steps. Its state now: REVOKED unless one of its
        tasks runs (then the worker tells its end)."""
        await self._mark_revoked(session, task)
        return await self.refresh(session, task)

    async def _mark_revoked(self, session: AsyncSession, task: TaskRecord) -> None:
        """Revocation first, record after: once the record says revoked, no
        worker starts its tasks any more (task_states.verdict relies on it)."""
        await self.revoker.revoke(task.all_ids, until=self.deadline(task))
        task.revoked_at = datetime.now(UTC)
        await commit_without_waiting_for_flush(session)

    async def refresh(self, session: AsyncSession, task: TaskRecord) -> TaskReply:
        """The task's current state; a final one is kept and Redis forgets it."""
        if task.status in FINAL:
            return task.reply()
        stored = dict(zip(task.all_ids, await self.listener.fetch(task.all_ids), strict=True))
        reply = self._reply(task, stored)
        if reply.status in FINAL:
            # Another request may have kept the end first (and had Redis
            # forget it): the record's own end wins.
            return await self.conclude(session, task.id, reply)
        return reply

    def _reply(self, task: TaskRecord, stored: dict[str, Meta | None]) -> TaskReply:
        """The task's reply from the states stored for its tasks (by id)."""
        every_task = [stored[task_id] for task_id in task.all_ids]
        answer = [stored[task_id] for task_id in task.answer_ids]
        reply = ended_early(task.id, combine(task.id, answer, task.is_group), every_task)
        deadline = self.deadline(task)
        return verdict(
            reply,
            every_task,
            # A revocation after the deadline proves nothing: the task may
            # have run, and its result expired, long before.
            revoked=task.revoked_at is not None and task.revoked_at < deadline,
            past_deadline=datetime.now(UTC) > deadline,
        )

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
        task.keep(reply)
        # The answer is already known: the commit need not wait for the disk.
        await commit_without_waiting_for_flush(session)
        self._end_kept(task)
        return reply

    def _end_kept(self, task: TaskRecord) -> None:
        """Once the record holds its end, Redis need not keep the results, and
        the task no longer counts as in flight."""
        self.listener.forget_soon(task.all_ids)
        self.in_flight.leave_soon(task.owner_id, [task.id])


async def published(publishing: "asyncio.Future[None]") -> bool:
    """Whether the publish went out (it ends within its own deadline)."""
    try:
        await asyncio.shield(publishing)
    except BrokerUnavailableError:
        return False
    return True
