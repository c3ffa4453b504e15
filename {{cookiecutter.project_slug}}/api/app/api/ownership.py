"""Rows that belong to one user. Another user's row answers 404, exactly like a
row that does not exist, so ids cannot be probed for existence."""

import uuid
from collections.abc import Sequence
from typing import TypeVar

from fastapi import HTTPException, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Note, TaskRecord
from app.services.account_cache import Account

Owned = TypeVar("Owned", Note, TaskRecord)


async def find_owned(
    session: AsyncSession, model: type[Owned], row_id: uuid.UUID, owner: Account
) -> Owned | None:
    """The owner's row, or None: one query whether the row is missing or another's."""
    return await session.scalar(select(model).where(model.id == row_id, model.owner_id == owner.id))


async def get_owned(
    session: AsyncSession, model: type[Owned], row_id: uuid.UUID, owner: Account, what: str
) -> Owned:
    row = await find_owned(session, model, row_id, owner)
    if row is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail=f"{what} not found")
    return row


async def owned_page(
    session: AsyncSession, model: type[Owned], owner: Account, offset: int, limit: int
) -> tuple[int, Sequence[Owned]]:
    """How many rows the owner has, and one page of them, newest first."""
    own = model.owner_id == owner.id
    total = await session.scalar(select(func.count()).select_from(model).where(own)) or 0
    rows = await session.scalars(
        select(model)
        .where(own)
        .order_by(model.created_at.desc(), model.id)
        .offset(offset)
        .limit(limit)
    )
    return total, rows.all()
