"""The states a follower is sent (TaskProgress), and its bounded queue of
replies (Follower): pure rules, no I/O."""

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from taskengine.errors import RedisUnavailableError
from taskengine.following import Follower, TaskProgress
from taskengine.records import TaskRecord
from taskengine.states import TaskReply


def record(answer_ids: list[str], all_ids: list[str], is_group: bool = False) -> TaskRecord:
    return TaskRecord(
        id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        name="followed",
        is_group=is_group,
        answer_ids=answer_ids,
        all_ids=all_ids,
        expires_at=datetime.now(UTC),
    )


def meta(task_id: str, status: str, result: Any = None) -> dict[str, Any]:
    return {"task_id": task_id, "status": status, "result": result}


def progress_meta(task_id: str, done: int, total: int = 10) -> dict[str, Any]:
    return meta(task_id, "PROGRESS", {"done": done, "total": total})


def changed(reply: TaskReply | None) -> TaskReply:
    assert reply is not None, "expected a new reply"
    return reply


def test_a_plain_task_reports_its_own_states_once_each() -> None:
    task = record(["a"], ["a"])
    progress = TaskProgress(task)
    assert changed(progress.start([None])).status == "PENDING"
    assert changed(progress.update(meta("a", "STARTED"))).status == "STARTED"
    assert progress.update(meta("a", "STARTED")) is None  # no change, no message
    assert changed(progress.update(progress_meta("a", 1))).result == {"done": 1, "total": 10}
    final = changed(progress.update(meta("a", "SUCCESS", 5)))
    assert (final.task_id, final.status, final.result) == (task.id, "SUCCESS", 5)
    assert progress.update(meta("a", "REVOKED")) is None  # after the final: nothing
    assert progress.last == final


def test_a_state_published_before_the_read_is_stale() -> None:
    progress = TaskProgress(record(["a"], ["a"]))
    assert changed(progress.start([progress_meta("a", 4)])).result["done"] == 4
    # Published before Redis was read, delivered after.
    assert progress.update(meta("a", "STARTED")) is None
    assert progress.update(progress_meta("a", 3)) is None
    assert changed(progress.update(progress_meta("a", 5))).result["done"] == 5


def test_a_retry_after_catching_up_is_reported() -> None:
    progress = TaskProgress(record(["a"], ["a"]))
    progress.start([meta("a", "STARTED")])
    progress.update(meta("a", "STARTED"))  # caught up with the read
    assert changed(progress.update(meta("a", "RETRY"))).status == "RETRY"
    assert changed(progress.update(meta("a", "STARTED"))).status == "STARTED"


def test_a_read_older_than_a_delivered_message_is_ignored() -> None:
    progress = TaskProgress(record(["a"], ["a"]))
    assert changed(progress.update(progress_meta("a", 6))).result["done"] == 6
    assert progress.start([progress_meta("a", 5)]) is None


def test_a_workflow_reports_members_finished_over_total() -> None:
    chord = record(["body"], ["m1", "m2", "m3", "body"])
    progress = TaskProgress(chord)
    assert changed(progress.start([None, None, None, None])).status == "PENDING"
    assert changed(progress.update(meta("m1", "STARTED"))).status == "STARTED"
    assert changed(progress.update(meta("m2", "SUCCESS", 2))).result == {"done": 1, "total": 4}
    assert changed(progress.update(meta("m1", "SUCCESS", 2))).result == {"done": 2, "total": 4}
    assert changed(progress.update(meta("m3", "SUCCESS", 2))).result == {"done": 3, "total": 4}
    assert progress.update(meta("body", "STARTED")) is None  # still 3 of 4
    final = changed(progress.update(meta("body", "SUCCESS", 6)))
    assert (final.status, final.result) == ("SUCCESS", 6)


def test_a_group_answers_the_list_and_a_failure_ends_a_chain() -> None:
    group = TaskProgress(record(["x", "y"], ["x", "y"], is_group=True))
    group.start([meta("x", "SUCCESS", 1), None])
    assert changed(group.update(meta("y", "SUCCESS", 2))).result == [1, 2]

    chain = TaskProgress(record(["last"], ["last", "first"]))
    chain.start([None, None])
    failed = changed(chain.update(meta("first", "FAILURE", ValueError("bad"))))
    assert failed.error is not None
    assert (failed.status, failed.error.type, failed.error.message) == (
        "FAILURE",
        "ValueError",
        "bad",
    )
    assert chain.update(meta("last", "SUCCESS", 4)) is None  # the failure was final


def test_states_of_other_tasks_are_ignored() -> None:
    progress = TaskProgress(record(["a"], ["a"]))
    progress.start([None])
    assert progress.update(meta("b", "SUCCESS", 1)) is None
    assert progress.current().status == "PENDING"


def reply(status: str, done: int = 0) -> TaskReply:
    return TaskReply(task_id=uuid.UUID(int=0), status=status, result={"done": done})


async def test_a_full_follower_drops_the_oldest_intermediate_reply_never_the_final() -> None:
    follower = Follower(TaskProgress(record(["a"], ["a"])), 3)
    for done in range(1, 6):
        follower.put(reply("PROGRESS", done))
    follower.put(reply("SUCCESS"))
    received = [await follower.get() for _ in range(3)]
    assert [(r.status, r.result["done"]) for r in received] == [
        ("PROGRESS", 4),
        ("PROGRESS", 5),
        ("SUCCESS", 0),
    ]


async def test_a_follower_waits_for_its_next_reply_and_reports_a_failure() -> None:
    follower = Follower(TaskProgress(record(["a"], ["a"])), 2)
    getting = asyncio.ensure_future(follower.get())
    await asyncio.sleep(0)
    assert not getting.done()
    follower.put(reply("STARTED"))
    assert (await getting).status == "STARTED"
    follower.put(reply("PROGRESS", 1))
    follower.fail(RedisUnavailableError("gone"))
    assert (await follower.get()).status == "PROGRESS"  # what was queued is still sent
    with pytest.raises(RedisUnavailableError):
        await follower.get()
