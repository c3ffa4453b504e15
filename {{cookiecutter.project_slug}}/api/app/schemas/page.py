from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

MAX_PAGE_SIZE = 100
# PostgreSQL's OFFSET is a bigint; far below it, and enough for any listing.
MAX_OFFSET = 2**31 - 1

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Rows to return")]

Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    total: int
    offset: int
    limit: int
