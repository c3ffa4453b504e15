"""The example resource: each user reads and writes only their own notes.

Another user's note answers 404, exactly like a note that does not exist, so
ids cannot be probed for existence.
"""

import uuid

from fastapi import APIRouter, HTTPException, Response, status
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.api import API_V1_PREFIX
from app.api.deps import CurrentUser, SessionDep
from app.models import Note, User
from app.schemas.note import NoteCreate, NotePublic, NoteUpdate
from app.schemas.page import Limit, Offset, Page

router = APIRouter(prefix=f"{API_V1_PREFIX}/notes")


async def get_own_note(session: SessionDep, user: User, note_id: uuid.UUID) -> Note:
    note = await session.scalar(select(Note).where(Note.id == note_id, Note.owner_id == user.id))
    if note is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Note not found")
    return note


async def commit_or_conflict(session: SessionDep) -> None:
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT, detail="You already have a note with this title"
        ) from None


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a note")
async def create_note(session: SessionDep, user: CurrentUser, body: NoteCreate) -> NotePublic:
    note = Note(owner_id=user.id, title=body.title, body=body.body)
    session.add(note)
    await commit_or_conflict(session)
    await session.refresh(note)
    return NotePublic.model_validate(note)


@router.get("", summary="Your notes, newest first")
async def list_notes(
    session: SessionDep, user: CurrentUser, offset: Offset = 0, limit: Limit = 50
) -> Page[NotePublic]:
    own = Note.owner_id == user.id
    total = await session.scalar(select(func.count()).select_from(Note).where(own)) or 0
    notes = await session.scalars(
        select(Note)
        .where(own)
        .order_by(Note.created_at.desc(), Note.id)
        .offset(offset)
        .limit(limit)
    )
    items = [NotePublic.model_validate(note) for note in notes]
    return Page(items=items, total=total, offset=offset, limit=limit)


@router.get("/{note_id}", summary="One of your notes")
async def read_note(session: SessionDep, user: CurrentUser, note_id: uuid.UUID) -> NotePublic:
    return NotePublic.model_validate(await get_own_note(session, user, note_id))


@router.patch("/{note_id}", summary="Change one of your notes")
async def update_note(
    session: SessionDep, user: CurrentUser, note_id: uuid.UUID, body: NoteUpdate
) -> NotePublic:
    note = await get_own_note(session, user, note_id)
    for field, value in body.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(note, field, value)
    await commit_or_conflict(session)
    await session.refresh(note)
    return NotePublic.model_validate(note)


@router.delete(
    "/{note_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete one of your notes"
)
async def delete_note(session: SessionDep, user: CurrentUser, note_id: uuid.UUID) -> Response:
    note = await get_own_note(session, user, note_id)
    await session.delete(note)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
