"""The example resource: notes that belong to one user each."""

import uuid

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamps, UUIDPrimaryKey


class Note(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "notes"
    # A user cannot have two notes with the same title (a 409 to show).
    __table_args__ = (UniqueConstraint("owner_id", "title"),)

    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
