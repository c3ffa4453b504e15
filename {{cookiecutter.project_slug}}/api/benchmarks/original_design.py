"""The design this template replaces, rebuilt for comparison, and served over
HTTP as its users had it.

`OriginalDesign.round_trip` is its producer: sync_to_async(send_task), then
sync_to_async(ready) polled with a backoff from 0.1 s, times 1.5, then get().
`app` is the FastAPI app around it: POST /tasks/integer-multiplication with
{"integer": n} answers {"result": ...}; no authentication, no database. It
takes the broker, the result backend and the queue from the API's settings.
Serve it from api/: `uvicorn benchmarks.original_design:app`.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from asgiref.sync import sync_to_async
from celery import Celery
from fastapi import FastAPI, Request
from pydantic import BaseModel

from app.core.config import Settings, get_settings
from app.core.producer.catalog import INTEGER_MULTIPLICATION
from app.core.producer.serialization import ACCEPT_CONTENT, TASK_SERIALIZER

# What uvicorn is given to serve `app`, and a path it answers once the app has
# started (FastAPI's own, so that the design gains no endpoint of ours).
APP_PATH = "benchmarks.original_design:app"
READY_PATH = "/openapi.json"


def plain_client(settings: Settings) -> Celery:
    """A Celery client as an application would make one, with nothing of ours."""
    client = Celery(
        "plain-client",
        broker=settings.CELERY_BROKER_URL,
        backend=settings.CELERY_RESULT_BACKEND_URL,
        set_as_current=False,
    )
    client.conf.update(
        task_serializer=TASK_SERIALIZER,
        result_serializer=TASK_SERIALIZER,
        accept_content=ACCEPT_CONTENT,
        result_accept_content=ACCEPT_CONTENT,
    )
    return client


class OriginalDesign:
    """The producer this template replaces."""

    def __init__(self, client: Celery, queue: str) -> None:
        self.client = client
        self.queue = queue

    async def round_trip(self, integer: int) -> object:
        send = sync_to_async(self.client.send_task)  # thread_sensitive=True: one thread
        result = await send(INTEGER_MULTIPLICATION, args=[integer], queue=self.queue)
        delay = 0.1
        while not await sync_to_async(result.ready)():
            await asyncio.sleep(delay)
            delay *= 1.5
        value = await sync_to_async(result.get)()
        await sync_to_async(result.forget)()
        return value


class Multiplication(BaseModel):
    integer: int


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Built at startup rather than on import: the benchmark imports this module
    # for OriginalDesign, and each uvicorn worker process builds its own client.
    settings = get_settings()
    app.state.design = OriginalDesign(plain_client(settings), settings.CELERY_TASK_QUEUE)
    yield


app = FastAPI(title="The original design", lifespan=lifespan)


@app.post("/tasks/integer-multiplication")
async def integer_multiplication(body: Multiplication, request: Request) -> dict[str, Any]:
    design: OriginalDesign = request.app.state.design
    return {"result": await design.round_trip(body.integer)}
