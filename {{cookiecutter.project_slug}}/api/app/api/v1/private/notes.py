"""The example resource: each user reads and writes only their own notes."""

import uuid

from fastapi import APIRouter, HTTPException, Response, status
from sqlalchemy.exc import IntegrityError

from app.api import API_V1_PREFIX
from app.api.deps import CurrentUser, SessionDep
from app.api.ownership import get_owned, owned_page
from app.api.responses import NOT_FOUND, Responses, error
from app.models import Note
from app.schemas.note import NoteCreate, NotePublic, NoteUpdate
from app.schemas.page import Limit, Offset, Page

router = APIRouter(prefix=f"{API_V1_PREFIX}/notes")


async def commit_or_conflict(session: SessionDep) -> None:
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT, detail="You already have a note with this title"
        ) from None


TITLE_TAKEN: Responses = {409: error("You already have a note with this title")}


@router.post(
    "", status_code=status.HTTP_201_CREATED, summary="Create a note", responses=TITLE_TAKEN
)
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
    total, notes = await owned_page(session, Note, user, offset, limit)
    items = [NotePublic.model_validate(note) for note in notes]
    return Page(items=items, total=total, offset=offset, limit=limit)


@router.get("/{note_id:uuid}", summary="One of your notes", responses=NOT_FOUND)
async def read_note(session: SessionDep, user: CurrentUser, note_id: uuid.UUID) -> NotePublic:
    return NotePublic.model_validate(await get_owned(session, Note, note_id, user, "Note"))


@router.patch(
    "/{note_id:uuid}",
    summary="Change one of your notes",
    responses={**NOT_FOUND, **TITLE_TAKEN},
)
async def update_note(
    session: SessionDep, user: CurrentUser, note_id: uuid.UUID, body: NoteUpdate
) -> NotePublic:
    note = await get_owned(session, Note, note_id, user, "Note")
    for field, value in body.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(note, field, value)
    await commit_or_conflict(session)
    await session.refresh(note)
    return NotePublic.model_validate(note)


@router.delete(
    "/{note_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete one of your notes",
    responses=NOT_FOUND,
)
async def delete_note(session: SessionDep, user: CurrentUser, note_id: uuid.UUID) -> Response:
    note = await get_owned(session, Note, note_id, user, "Note")
    await session.delete(note)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
