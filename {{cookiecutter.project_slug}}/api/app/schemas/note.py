import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# PostgreSQL's text holds no NUL character: refused here, not as a 500 there.
WITHOUT_NUL = r"^[^\x00]*$"
Title = Annotated[str, Field(min_length=1, max_length=200, pattern=WITHOUT_NUL)]
Body = Annotated[str, Field(max_length=10_000, pattern=WITHOUT_NUL)]


class NoteCreate(BaseModel):
    title: Title
    body: Body = ""


class NoteUpdate(BaseModel):
    """Absent fields stay as they are."""

    title: Title | None = None
    body: Body | None = None


class NotePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    body: str
    created_at: datetime
    updated_at: datetime
