"""The precedence rules that turn stored task states into one reply
(taskengine/states.py); no services."""

import uuid
from typing import Any

import pytest

from taskengine.states import LOST, PROGRESS, combine, ended_early, verdict

TASK_ID = uuid.uuid4()


def meta(status: str, result: Any = None) -> dict[str, Any]:
    return {"status": status, "result": result}


def test_a_single_success_answers_its_value() -> None:
    reply = combine(TASK_ID, [meta("SUCCESS", 42)], is_group=False)
    assert (reply.task_id, reply.status, reply.result, reply.error) == (
        TASK_ID,
        "SUCCESS",
        42,
        None,
    )


def test_a_group_answers_one_value_per_member_in_order() -> None:
    reply = combine(TASK_ID, [meta("SUCCESS", 1), meta("SUCCESS", 2)], is_group=True)
    assert (reply.status, reply.result) == ("SUCCESS", [1, 2])


def test_a_group_of_one_still_answers_a_list() -> None:
    reply = combine(TASK_ID, [meta("SUCCESS", "a")], is_group=True)
    assert reply.result == ["a"]


def test_a_result_json_cannot_carry_is_given_as_its_repr() -> None:
    """Pickle results may hold any object; the reply is JSON all the same."""
    reply = combine(TASK_ID, [meta("SUCCESS", {"when": object})], is_group=False)
    assert reply.result == {"when": repr(object)}


def test_a_failure_wins_over_revocation_and_unfinished_members() -> None:
    metas = [meta("REVOKED"), None, meta("FAILURE", ValueError("bad input")), meta("SUCCESS", 1)]
    reply = combine(TASK_ID, metas, is_group=True)
    assert reply.status == "FAILURE"
    assert reply.error is not None
    assert (reply.error.type, reply.error.message) == ("ValueError", "bad input")
    assert reply.result is None


def test_a_revocation_wins_over_unfinished_members() -> None:
    reply = combine(TASK_ID, [meta("REVOKED"), None, meta("STARTED")], is_group=True)
    assert reply.status == "REVOKED"


def test_a_member_not_yet_stored_keeps_the_answer_pending() -> None:
    reply = combine(TASK_ID, [meta("SUCCESS", 1), None], is_group=True)
    assert (reply.status, reply.result) == ("PENDING", None)


def test_a_group_reports_its_least_advanced_member() -> None:
    metas = [meta("SUCCESS", 1), meta(PROGRESS, {"done": 1, "total": 2}), meta("STARTED")]
    assert combine(TASK_ID, metas, is_group=True).status == "STARTED"


def test_progress_of_a_single_task_carries_its_counts() -> None:
    reply = combine(TASK_ID, [meta(PROGRESS, {"done": 3, "total": 10})], is_group=False)
    assert (reply.status, reply.result) == (PROGRESS, {"done": 3, "total": 10})


def test_progress_of_a_group_carries_no_member_counts() -> None:
    metas = [meta(PROGRESS, {"done": 3, "total": 10}), meta("SUCCESS", 1)]
    reply = combine(TASK_ID, metas, is_group=True)
    assert (reply.status, reply.result) == (PROGRESS, None)


def test_a_chain_whose_first_link_failed_ends_with_that_failure() -> None:
    waiting = combine(TASK_ID, [None], is_group=False)
    related = [None, meta("SUCCESS", 2), meta("FAILURE", TypeError("no"))]
    reply = ended_early(TASK_ID, waiting, related)
    assert reply.status == "FAILURE"
    assert reply.error is not None
    assert (reply.error.type, reply.error.message) == ("TypeError", "no")


def test_a_chain_whose_first_link_was_revoked_ends_revoked() -> None:
    waiting = combine(TASK_ID, [None], is_group=False)
    assert ended_early(TASK_ID, waiting, [None, meta("REVOKED")]).status == "REVOKED"


def test_a_chain_still_running_stays_as_it_was() -> None:
    waiting = combine(TASK_ID, [None], is_group=False)
    assert ended_early(TASK_ID, waiting, [meta("SUCCESS", 2), None]) is waiting


@pytest.mark.parametrize(
    ("stored", "cancelled", "past_deadline", "expected"),
    [
        # A state a worker stored always wins.
        ([meta("SUCCESS", 2)], True, True, "SUCCESS"),
        ([meta("FAILURE", ValueError("x"))], False, True, "FAILURE"),
        # Cancelled and not running: it never will run.
        ([None], True, False, "REVOKED"),
        ([meta("PENDING")], True, False, "REVOKED"),
        ([meta("RECEIVED")], True, False, "REVOKED"),
        ([meta("RETRY")], True, False, "REVOKED"),
        # Cancelled while a task of it runs: the worker tells the end.
        ([meta("STARTED")], True, False, "STARTED"),
        ([meta(PROGRESS, {"done": 1, "total": 2})], True, False, PROGRESS),
        ([meta("STARTED"), None], True, False, "PENDING"),
        # Nothing to decide before the deadline.
        ([None], False, False, "PENDING"),
        ([meta("STARTED")], False, False, "STARTED"),
        # Past it, no worker will ever tell.
        ([None], False, True, LOST),
        ([meta("STARTED")], False, True, LOST),
        ([meta("STARTED")], True, True, LOST),
    ],
)
def test_verdict_decides_only_what_the_evidence_proves(
    stored: list[dict[str, Any] | None], cancelled: bool, past_deadline: bool, expected: str
) -> None:
    """`stored`: every task's state, the answer's last (a chain's last link)."""
    reply = combine(TASK_ID, stored[-1:], is_group=False)
    decided = verdict(reply, stored, cancelled=cancelled, past_deadline=past_deadline)
    assert decided.status == expected
