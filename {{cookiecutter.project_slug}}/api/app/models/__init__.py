"""ORM tables. Import every model module here so Alembic sees all of them."""

from app.models.base import Base

__all__ = ["Base"]
