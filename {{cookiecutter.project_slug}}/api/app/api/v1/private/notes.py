"""The example resource: each user reads and writes only their own notes."""

import uuid

from fastapi import APIRouter, HTTPException, Response, status
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.api import API_V1_PREFIX
from app.api.deps import CurrentUser, SessionDep
from app.api.responses import NOT_FOUND, Responses, error
from app.models.note import Note
from app.schemas.note import NoteCreate, NotePublic, NoteUpdate
from app.schemas.page import Limit, Offset, Page
from app.services.accounts import Account

router = APIRouter(prefix=f"{API_V1_PREFIX}/notes")


async def get_note(session: SessionDep, note_id: uuid.UUID, owner: Account) -> Note:
    """The owner's note; 404 whether it is missing or another's: ids cannot be probed."""
    note = await session.scalar(select(Note).where(Note.id == note_id, Note.owner_id == owner.id))
    if note is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Note not found")
    return note


TITLE_IS_TAKEN = "You already have a note with this title"
TITLE_TAKEN: Responses = {409: error(TITLE_IS_TAKEN)}


async def saved(session: SessionDep, note: Note) -> NotePublic:
    """The note committed and read back; 409 if its owner has one of this title."""
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, TITLE_IS_TAKEN) from None
    await session.refresh(note)
    return NotePublic.model_validate(note)


@router.post(
    "", status_code=status.HTTP_201_CREATED, summary="Create a note", responses=TITLE_TAKEN
)
async def create_note(session: SessionDep, user: CurrentUser, body: NoteCreate) -> NotePublic:
    note = Note(owner_id=user.id, title=body.title, body=body.body)
    session.add(note)
    return await saved(session, note)


@router.get("", summary="Your notes, newest first")
async def list_notes(
    session: SessionDep, user: CurrentUser, offset: Offset = 0, limit: Limit = 50
) -> Page[NotePublic]:
    own = Note.owner_id == user.id
    total = await session.scalar(select(func.count()).select_from(Note).where(own)) or 0
    newest_first = select(Note).where(own).order_by(Note.created_at.desc(), Note.id)
    notes = await session.scalars(newest_first.offset(offset).limit(limit))
    items = [NotePublic.model_validate(note) for note in notes]
    return Page(items=items, total=total, offset=offset, limit=limit)


@router.get("/{note_id:uuid}", summary="One of your notes", responses=NOT_FOUND)
async def read_note(session: SessionDep, user: CurrentUser, note_id: uuid.UUID) -> NotePublic:
    return NotePublic.model_validate(await get_note(session, note_id, user))


@router.patch(
    "/{note_id:uuid}", summary="Change one of your notes", responses={**NOT_FOUND, **TITLE_TAKEN}
)
async def update_note(
    session: SessionDep, user: CurrentUser, note_id: uuid.UUID, body: NoteUpdate
) -> NotePublic:
    note = await get_note(session, note_id, user)
    for field, value in body.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(note, field, value)
    return await saved(session, note)


@router.delete(
    "/{note_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete one of your notes",
    responses=NOT_FOUND,
)
async def delete_note(session: SessionDep, user: CurrentUser, note_id: uuid.UUID) -> Response:
    note = await get_note(session, note_id, user)
    await session.delete(note)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
