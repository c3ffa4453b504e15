"""The async-native peer a team might pick instead of this template: a minimal
FastAPI + taskiq service with the same task (double an integer), the same
RabbitMQ (aio-pika broker) and the same Redis (taskiq-redis results). No
account, no database, no record: only the round trip, as its documentation
shows it, with the result polled every PEER_CHECK_INTERVAL seconds (taskiq's
default, 0.2 s, would cap it at 5 answers a second per connection).

Served by benchmarks/compare_designs.py, from the render's virtual environment
with taskiq, taskiq-aio-pika and taskiq-redis in it:

    uvicorn taskiq_peer:app              # the API
    taskiq worker taskiq_peer:broker     # its worker, one async process

`PEER_*` variables say where. Its queue and exchange are of this run only and
go away with their last user; its dead-letter queue, deleted by the benchmark.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from taskiq_aio_pika import AioPikaBroker
from taskiq_aio_pika.exchange import Exchange
from taskiq_aio_pika.queue import Queue, QueueType
from taskiq_redis import RedisAsyncResultBackend

NAME = os.environ.get("PEER_QUEUE", "taskiq-peer")
CHECK_INTERVAL = float(os.environ.get("PEER_CHECK_INTERVAL", "0.01"))
DEAD_LETTER = ".dead_letter"

broker = AioPikaBroker(
    os.environ.get("PEER_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    # Classic, as the render's queues are (taskiq-aio-pika declares quorum by default).
    task_queues=[Queue(name=NAME, type=QueueType.CLASSIC, auto_delete=True)],
    exchange=Exchange(name=NAME, auto_delete=True),
    # Its own, not taskiq's shared default; nobody consumes it, so the
    # benchmark deletes it (DEAD_LETTER) when it ends.
    dead_letter_queue=Queue(name=NAME + DEAD_LETTER, type=QueueType.CLASSIC),
).with_result_backend(
    RedisAsyncResultBackend(
        os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"),
        keep_results=False,
        result_ex_time=3600,
    )
)


@broker.task
async def integer_multiplication(integer: int) -> int:
    return integer * 2


class Body(BaseModel):
    integer: int


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await broker.startup()
    yield
    await broker.shutdown()


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/tasks/integer-multiplication")
async def multiply(body: Body) -> dict[str, Any]:
    task = await integer_multiplication.kiq(body.integer)
    result = await task.wait_result(check_interval=CHECK_INTERVAL, timeout=30)
    return {"task_id": task.task_id, "status": "SUCCESS", "result": result.return_value}
