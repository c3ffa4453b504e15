"""Liveness and readiness probes."""

from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel

from app.api import API_V1_PREFIX
from app.api.deps import SettingsDep
from app.core.readiness import Readiness, broker_probe, check_all, postgres_probe, redis_probe

router = APIRouter(prefix=f"{API_V1_PREFIX}/health")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


@router.get("", summary="Liveness: the process serves requests (no I/O)")
async def health() -> Health:
    return Health()


@router.get(
    "/ready",
    summary="Readiness: PostgreSQL, the broker and the result backend answer",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Readiness}},
)
async def ready(request: Request, response: Response, settings: SettingsDep) -> Readiness:
    state = request.app.state
    timeout = settings.READINESS_TIMEOUT
    readiness = await check_all(
        {
            "postgres": postgres_probe(state.engine),
            "broker": broker_probe(settings.CELERY_BROKER_URL),
            "result_backend": redis_probe(state.redis),
        },
        timeout,
    )
    if readiness.status != "ready":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return readiness
