"""A load run: 10,000 /async echo tasks at concurrency 64, each polled to its end,
against a real API process and a real worker. Every task must come back with
its own right result, none lost, no request refused, and the API's resident
memory at the end within 20% of its start. Then the same with the worker
SIGKILLed halfway and replaced.

Minutes long, so `make test` leaves them out (marker `load`, deselected in
pyproject.toml); `make bench-load` runs them and prints their figures.
"""

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from app.core.config import QUEUE_TYPE, TASK_SERIALIZER, Settings
from benchmarks.servers import api_process
from testkit import celery_client
from testkit.faults import KillableWorker, started
from testkit.task_flood import FloodReport, TaskFlood

pytestmark = pytest.mark.load

# Tasks per run; LOAD_TASKS makes a shorter run (the template's suite runs 2,000).
TASKS = int(os.environ.get("LOAD_TASKS", "10000"))
CONCURRENCY = 64
RSS_GROWTH_LIMIT = 0.20
# These runs look for tasks lost or answered wrong under a sustained load, not
# for the publish deadline (tests/test_tasks.py and test_faults.py have it):
# on a shared 2-core CI machine, a confirm behind 64 others took over the
# default 1.5 s twice in 2,000 tasks, and the task was refused with 503.
LOAD_PUBLISH_TIMEOUT = "5"


@contextmanager
def api_and_worker(settings: Settings, log: Path) -> Iterator[tuple[str, int, KillableWorker]]:
    """An API process and a worker of their own queue; yields the API's base
    URL, its process id and the worker."""
    queue = f"test.load.{uuid.uuid4().hex[:12]}"
    celery = celery_client(
        settings.CELERY_BROKER_URL, settings.CELERY_RESULT_BACKEND_URL, TASK_SERIALIZER, QUEUE_TYPE
    )
    environment = {"CELERY_TASK_QUEUE": queue, "CELERY_PUBLISH_TIMEOUT": LOAD_PUBLISH_TIMEOUT}
    try:
        with (
            started(KillableWorker(celery, queue, log)) as worker,
            api_process(**environment) as (base, pid),
        ):
            yield base, pid, worker
    finally:
        celery.close()


def assert_every_task_came_back(report: FloodReport) -> None:
    summary = report.summary("load")
    assert dict(report.ends) == {"SUCCESS": TASKS}, summary
    assert report.wrong == [], summary
    assert report.correct == TASKS, summary
    assert not report.refused, summary
    assert report.rss_growth < RSS_GROWTH_LIMIT, summary


async def test_ten_thousand_tasks_come_back_right(
    settings: Settings, make_user: Any, auth_headers: Any, tmp_path: Path
) -> None:
    headers = auth_headers(await make_user())
    with api_and_worker(settings, tmp_path / "worker.log") as (base, pid, _):
        report = await TaskFlood(base, headers, pid, TASKS, CONCURRENCY).run()
    print("\n" + report.summary(f"{TASKS} tasks at concurrency {CONCURRENCY}"))
    assert_every_task_came_back(report)


async def test_ten_thousand_tasks_survive_a_worker_killed_halfway(
    settings: Settings, make_user: Any, auth_headers: Any, tmp_path: Path
) -> None:
    headers = auth_headers(await make_user())
    killed: dict[str, float] = {}
    with api_and_worker(settings, tmp_path / "worker.log") as (base, pid, worker):
        flood = TaskFlood(base, headers, pid, TASKS, CONCURRENCY)

        async def replace_worker() -> None:
            killed["in flight"] = flood.in_flight
            began = time.monotonic()
            worker.kill()
            await asyncio.to_thread(worker.start)
            killed["down"] = time.monotonic() - began

        report = await flood.run(halfway=replace_worker)
    print(
        "\n"
        + report.summary(f"{TASKS} tasks, worker SIGKILLed halfway and replaced")
        + f"; tasks in flight at the kill {killed['in flight']:.0f},"
        f" worker down {killed['down']:.1f} s"
    )
    # The kill came while tasks were on their way.
    assert killed["in flight"] > 0, killed
    assert_every_task_came_back(report)
