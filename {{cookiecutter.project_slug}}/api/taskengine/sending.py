"""Sending a task: every task is recorded before it is sent, so none runs without
its owner's record; a publish that fails cancels what may have gone out."""

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import states
from celery.canvas import Signature

from taskengine.celery_messages import MessageBuilder, Outgoing, build
from taskengine.config import EngineConfig
from taskengine.errors import (
    RedisUnavailableError,
    ServiceUnavailableError,
    TaskFailedError,
    TaskTimeoutError,
    TooManyTasksError,
)
from taskengine.leases import Leases
from taskengine.listener import ResultListener
from taskengine.publisher import Publisher
from taskengine.record_store import TaskRecords
from taskengine.records import TaskRecord
from taskengine.states import FINAL, Meta, TaskReply
from taskengine.tracking import Tracker


class FinalStates:
    """Waits for the final state of the answer's tasks, or for any task to fail or
    be revoked (a chain whose first link was revoked never runs its last one)."""

    def __init__(self, answer_ids: list[str], all_ids: list[str]) -> None:
        self._waiting = set(answer_ids)
        self._all = set(all_ids)
        self._metas: dict[str, Meta] = {}
        self.ended: asyncio.Future[dict[str, Meta]] = asyncio.get_running_loop().create_future()

    def deliver(self, meta: Meta) -> None:
        task_id, status = meta["task_id"], meta["status"]
        if status in states.READY_STATES and task_id in self._all and task_id not in self._metas:
            self._waiting.discard(task_id)
            self._metas[task_id] = meta
            ended = not self._waiting or status in (states.FAILURE, states.REVOKED)
            if ended and not self.ended.done():
                self.ended.set_result(dict(self._metas))

    def fail(self, error: Exception) -> None:
        if not self.ended.done():
            self.ended.set_exception(error)

    def close(self) -> None:
        """Nobody waits any more: a failure told meanwhile is not an error to log."""
        if not self.ended.done():
            self.ended.cancel()
        elif not self.ended.cancelled():
            self.ended.exception()


@dataclass
class Sender:
    config: EngineConfig
    builder: MessageBuilder
    publisher: Publisher
    records: TaskRecords
    listener: ResultListener
    in_flight: Leases
    tracker: Tracker

    async def submit(self, owner_id: uuid.UUID, name: str, signature: Signature) -> uuid.UUID:
        record, outgoing = self._prepare(owner_id, name, signature, self.config.expires)
        await self._admit(record)
        await self._record(record, durable=True)
        try:
            await self.publisher.publish(outgoing)
        except ServiceUnavailableError:
            await self.tracker.cancel_quietly(record)
            raise
        return record.id

    async def wait(self, owner_id: uuid.UUID, name: str, signature: Signature) -> TaskReply:
        record, outgoing = self._prepare(owner_id, name, signature, self.config.wait_timeout)
        await self._admit(record)
        final_states = FinalStates(record.answer_ids, record.all_ids)
        async with self.listener.subscribed(record.all_ids, final_states) as confirmations:
            # Recorded while Redis confirms the subscription: sent once both are done.
            await self._record(record, durable=False)
            try:
                await self.listener.confirmed(confirmations)
            except BaseException:  # no confirmation, or the request went away
                self.tracker.cancel_later(record)
                self.in_flight.release_soon(str(owner_id), [str(record.id)])
                raise
            try:
                reply = await self._publish_and_wait(record, outgoing, final_states)
            finally:
                final_states.close()
        if reply.status != states.SUCCESS:
            raise TaskFailedError(reply)
        return reply

    async def _publish_and_wait(
        self, record: TaskRecord, outgoing: Outgoing, final_states: FinalStates
    ) -> TaskReply:
        publishing = asyncio.ensure_future(self.publisher.publish(outgoing))
        try:
            async with asyncio.timeout(self.config.wait_timeout):
                metas = await first_result(publishing, final_states.ended)
        except TimeoutError:
            reply = await self.tracker.cancel_quietly(record)
            if reply.status not in FINAL or reply.status == states.REVOKED:
                raise TaskTimeoutError(record.id, self.config.wait_timeout) from None
            return reply  # it ended just in time
        except RedisUnavailableError:
            # Sent or not, the record stays, to be read later.
            if not await published(publishing):
                await self.tracker.cancel_quietly(record)
            raise
        except ServiceUnavailableError:
            await self.tracker.cancel_quietly(record)
            raise
        finally:
            self.publisher.finish_in_background(publishing)
        # Final: every answer's task ended, or one of its tasks failed or was revoked.
        return await self.tracker.conclude(record, self.tracker.decide(record, metas))

    def _prepare(
        self, owner_id: uuid.UUID, name: str, signature: Signature, seconds: float
    ) -> tuple[TaskRecord, Outgoing]:
        # When an unstarted task becomes worthless: a worker drops it then.
        expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
        built = build(
            self.builder,
            signature,
            queue=self.config.queue,
            serializer=self.config.serializer,
            expires=expires_at,
        )
        record = TaskRecord(
            id=uuid.UUID(built.task_id),
            owner_id=owner_id,
            name=name,
            is_group=built.is_group,
            answer_ids=built.answer_ids,
            all_ids=built.all_ids,
            expires_at=expires_at,
        )
        return record, built.outgoing

    async def _admit(self, record: TaskRecord) -> None:
        """Count the task in flight, or TooManyTasksError once ended ones are counted out."""
        owner, member = str(record.owner_id), str(record.id)
        until = self.tracker.deadline(record).timestamp()
        limit = self.config.tasks_in_flight
        if not await self.in_flight.take(owner, member, until, limit):
            await self.tracker.count_out_ended(record.owner_id)
            if not await self.in_flight.take(owner, member, until, limit):
                raise TooManyTasksError(limit)

    async def _record(self, record: TaskRecord, *, durable: bool) -> None:
        writing = self.records.add(record, durable=durable)
        try:
            # Shielded: a request that goes away leaves its row in the batch.
            await asyncio.shield(writing)
        except BaseException:
            # Its tasks will never be sent, and its row may be written all
            # the same: once the write has ended, the record says so.
            self.in_flight.release_soon(str(record.owner_id), [str(record.id)])
            writing.add_done_callback(lambda _: self.tracker.cancel_later(record))
            raise


async def first_result(
    publishing: "asyncio.Future[None]", results: "asyncio.Future[dict[str, Meta]]"
) -> dict[str, Meta]:
    """The results as soon as they are there (they prove the message arrived:
    the confirm is awaited only while there are none); a failed publish ends it."""
    racing: list[asyncio.Future[Any]] = [publishing, results]
    done, _ = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
    if results not in done:
        publishing.result()  # raises what stopped the publish
    return await results


async def published(publishing: "asyncio.Future[None]") -> bool:
    """Whether the publish went out (it ends within its own timeout)."""
    try:
        await asyncio.shield(publishing)
    except ServiceUnavailableError:
        return False
    return True
