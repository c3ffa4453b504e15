"""Liveness: answers as long as the process serves requests, without any I/O."""

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

router = APIRouter()


class Health(BaseModel):
    status: Literal["ok"] = "ok"


@router.get("/health", summary="Liveness probe")
async def health() -> Health:
    return Health()
