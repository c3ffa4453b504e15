"""A request's Celery signature, frozen: every task id known before publishing."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from celery.canvas import Signature
from celery.result import AsyncResult, GroupResult, ResultBase

from app.models import TaskRecord
from app.schemas.task import TaskReply
from app.services.account_cache import Account


@dataclass
class Submission:
    signature: Signature
    # The id the caller gets (see TaskRecord.id).
    task_id: uuid.UUID
    is_group: bool
    # The tasks whose results make the answer.
    answer_ids: list[str]
    # Every task the signature creates: the answer's, group members', parents'.
    all_ids: list[str]

    def record(
        self, owner: Account, name: str, reply: TaskReply, expires_at: datetime
    ) -> TaskRecord:
        """The task record of this submission, in the state of the reply."""
        task = TaskRecord(
            id=self.task_id,
            owner_id=owner.id,
            name=name,
            is_group=self.is_group,
            answer_ids=self.answer_ids,
            all_ids=self.all_ids,
            expires_at=expires_at,
            # Set, not left to the column's default: once written, the record
            # is a detached row, whose unset attributes would be read from the
            # database (which an async session cannot do lazily).
            revoked_at=None,
        )
        task.keep(reply)
        return task


def freeze(signature: Signature) -> Submission:
    result = signature.freeze()
    is_group = isinstance(result, GroupResult)
    answer = list(result.results) if is_group else [result]
    return Submission(
        signature=signature,
        task_id=uuid.UUID(result.id),
        is_group=is_group,
        answer_ids=[item.id for item in answer],
        all_ids=every_id(result),
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
