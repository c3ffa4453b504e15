"""ORM tables, a module each. Every module of this package is imported here,
so that Base.metadata holds every table (Alembic compares it with the
database): a new model needs no line anywhere else."""

import importlib
import pkgutil

from app.models.base import Base
from app.models.user import User

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Base", "User"]
