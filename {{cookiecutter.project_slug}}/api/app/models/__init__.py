"""ORM tables, a module each, all imported here: Base.metadata holds every table
(Alembic compares it with the database), and a new model needs no other line."""

import importlib
import pkgutil

from app.models.base import Base
from app.models.user import User

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Base", "User"]
