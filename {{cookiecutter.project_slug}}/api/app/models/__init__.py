"""ORM tables. Every model is imported here so Alembic sees all of them."""

from app.models.base import Base
from app.models.note import Note
from app.models.task import TaskRecord
from app.models.user import User

__all__ = ["Base", "Note", "TaskRecord", "User"]
