"""What became of a recorded task: its state now (a state a worker stored wins;
beyond that, states.verdict decides), its end kept, its cancelling."""

import asyncio
import dataclasses
import logging
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from taskengine.errors import PostgresUnavailableError, RedisUnavailableError, TaskEndedError
from taskengine.leases import Leases
from taskengine.record_store import TaskRecords
from taskengine.records import TaskRecord
from taskengine.results import StoredResults
from taskengine.states import FINAL, Meta, TaskReply, combine, ended_early, verdict

logger = logging.getLogger(__name__)

# Workers look for this mark before they start a task, and a long task between
# its steps (worker/worker/revocations.py): unlike Celery's revoke broadcast, it
# reaches workers that were down or restarted since, and stops only this task.
REVOKED_KEY_PREFIX = "celery-task-revoked-"
# A record whose tasks were never sent is marked cancelled once PostgreSQL
# answers: tried every second, for ten minutes.
CANCEL_LATER_PAUSE = 1.0
CANCEL_LATER_ATTEMPTS = 600


@dataclass
class Tracker:
    records: TaskRecords
    stored: StoredResults
    redis: Redis
    in_flight: Leases
    lost_after: float
    _later: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    def deadline(self, record: TaskRecord) -> datetime:
        """When a record without a final state is declared LOST."""
        return record.expires_at + timedelta(seconds=self.lost_after)

    async def state(self, record: TaskRecord) -> TaskReply:
        """The task's state now; a final one is concluded."""
        if record.status in FINAL:
            return record.reply()
        stored = dict(zip(record.all_ids, await self.stored.fetch(record.all_ids), strict=True))
        reply = self.decide(record, stored)
        if reply.status in FINAL:
            return await self.conclude(record, reply)
        return reply

    def decide(self, record: TaskRecord, stored: Mapping[str, Meta | None]) -> TaskReply:
        """The reply of the states stored for the record's tasks, by id."""
        every_task = [stored.get(task_id) for task_id in record.all_ids]
        answer = [stored.get(task_id) for task_id in record.answer_ids]
        reply = ended_early(record.id, combine(record.id, answer, record.is_group), every_task)
        deadline = self.deadline(record)
        # A cancelling after the deadline proves nothing: the task may have
        # run, and its result expired, long before.
        cancelled = record.cancelled_at is not None and record.cancelled_at < deadline
        past_deadline = datetime.now(UTC) > deadline
        return verdict(reply, every_task, cancelled=cancelled, past_deadline=past_deadline)

    async def count_out_ended(self, owner_id: uuid.UUID) -> None:
        """Count out the owner's tasks whose end is known, kept or unread: one query, one read."""
        members = await self.in_flight.members(str(owner_id))
        # A member without a record stays: its record may be being written.
        records = await self.records.find_many([uuid.UUID(member) for member in members])
        unread = [record for record in records if record.status not in FINAL]
        every_id = [task_id for record in unread for task_id in record.all_ids]
        stored = dict(zip(every_id, await self.stored.fetch(every_id), strict=True))
        ended = [
            str(record.id)
            for record in records
            if record.status in FINAL or self.decide(record, stored).status in FINAL
        ]
        await self.in_flight.release(str(owner_id), ended)

    async def conclude(self, record: TaskRecord, reply: TaskReply) -> TaskReply:
        """Keep the final reply in the record, the one place that does; the one
        everybody sees from now on (another request's, if it kept one first)."""
        kept = await self.records.keep_end(record.id, reply)
        self.stored.forget_soon(record.all_ids)
        self.in_flight.release_soon(str(record.owner_id), [str(record.id)])
        return kept

    async def cancel(self, record: TaskRecord) -> TaskReply:
        """Cancel a task that has not ended (TaskEndedError otherwise); its
        state now: REVOKED, unless one of its tasks runs."""
        current = await self.state(record)
        if current.status in FINAL:
            raise TaskEndedError(current)
        return await self.state(await self._mark_cancelled(record))

    async def cancel_quietly(self, record: TaskRecord) -> TaskReply:
        """Cancel, as well as can be, a task its request gave up on (a wait that
        timed out, a publish that failed); its state now, as far as it can be read."""
        try:
            record = await self._mark_cancelled(record)
        except RedisUnavailableError:
            # Whatever went out runs, and its record tells how it ends.
            return record.reply()
        except PostgresUnavailableError:
            self.cancel_later(record)
            return record.reply()
        try:
            return await self.state(record)
        except (RedisUnavailableError, PostgresUnavailableError):
            return record.reply()

    def cancel_later(self, record: TaskRecord) -> None:
        """Mark cancelled, once PostgreSQL answers, a record whose tasks were never
        sent (whichever way its write ended): verdict() then says REVOKED."""
        attempt = asyncio.create_task(self._mark_cancelled_when_possible(record.id))
        self._later.add(attempt)
        attempt.add_done_callback(self._later.discard)

    async def close(self) -> None:
        for attempt in list(self._later):
            attempt.cancel()
        await asyncio.gather(*self._later, return_exceptions=True)

    async def _mark_cancelled(self, record: TaskRecord) -> TaskRecord:
        """The mark first, the record after: once the record says cancelled,
        no worker starts its tasks any more (states.verdict relies on it)."""
        seconds = max(1, math.ceil(self.deadline(record).timestamp() - time.time()))
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for task_id in record.all_ids:
                    pipe.set(REVOKED_KEY_PREFIX + task_id, 1, ex=seconds)
                await pipe.execute()
        except Exception as error:  # redis raises several unrelated types
            raise RedisUnavailableError(repr(error)) from error
        await self.records.mark_cancelled(record.id)
        return dataclasses.replace(record, cancelled_at=datetime.now(UTC))

    async def _mark_cancelled_when_possible(self, task_id: uuid.UUID) -> None:
        for _ in range(CANCEL_LATER_ATTEMPTS):
            try:
                await self.records.mark_cancelled(task_id)
                return
            except PostgresUnavailableError:
                await asyncio.sleep(CANCEL_LATER_PAUSE)
            except Exception:
                logger.exception("Could not mark task %s as never sent", task_id)
                return
        logger.error("Task %s may be recorded though never sent: LOST at its deadline", task_id)
