"""The design this template replaces, as its users serve it: a FastAPI endpoint
that sends the task with `sync_to_async(send_task)`, then polls `ready()`
through `sync_to_async` from 0.1 s, times 1.5, then `get()`. No account, no
database, no record: only the round trip.

Served by uvicorn from the render's virtual environment (with asgiref) by
benchmarks/compare_designs.py: `ORIGINAL_*` variables say where and what.
"""

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from asgiref.sync import sync_to_async
from celery import Celery
from fastapi import FastAPI
from kombu import Exchange, Queue
from pydantic import BaseModel

TASK = os.environ["ORIGINAL_TASK"]
QUEUE = os.environ["ORIGINAL_QUEUE"]
SERIALIZER = os.environ.get("ORIGINAL_SERIALIZER", "json")
ARGUMENTS = json.loads(os.environ.get("ORIGINAL_QUEUE_ARGUMENTS") or "null")
EXCHANGE_TYPE = os.environ.get("ORIGINAL_EXCHANGE_TYPE", "direct")


class Body(BaseModel):
    integer: int


def client() -> Celery:
    celery = Celery(
        "original-design",
        broker=os.environ["CELERY_BROKER_URL"],
        backend=os.environ["CELERY_RESULT_BACKEND_URL"],
        set_as_current=False,
    )
    accepted = sorted({SERIALIZER, "json"})
    celery.conf.update(
        task_serializer=SERIALIZER,
        result_serializer=SERIALIZER,
        accept_content=accepted,
        result_accept_content=accepted,
        # The queue as the render declares it (its type, its dead-letter queue,
        # its exchange's type): RabbitMQ refuses a queue or an exchange declared
        # again with other arguments.
        task_queues=[
            Queue(
                QUEUE,
                Exchange(QUEUE, type=EXCHANGE_TYPE),
                routing_key=QUEUE,
                queue_arguments=ARGUMENTS,
            )
        ],
    )
    return celery


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.celery = client()
    yield
    app.state.celery.close()


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/tasks/integer-multiplication")
async def integer_multiplication(body: Body) -> dict[str, Any]:
    celery: Celery = app.state.celery
    result = await sync_to_async(celery.send_task)(TASK, args=[body.integer], queue=QUEUE)
    pause = 0.1
    while not await sync_to_async(result.ready)():
        await asyncio.sleep(pause)
        pause *= 1.5
    value = await sync_to_async(result.get)()
    await sync_to_async(result.forget)()
    return {"task_id": result.id, "status": "SUCCESS", "result": value}
