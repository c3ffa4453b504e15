"""Every task endpoint, in one table; each entry makes a waiting route and its
`/async` twin (task_routes.py).

The workflows are canvas workflows of the integer tasks, body {"integer": n, "size": k}:

- chain: n doubled k + 1 times, one task after the other: n * 2 ** (k + 1);
- group: k doublings of n side by side: [2n] * k;
- chord: that group, then the sum of its results: 2n * k.
"""

from fastapi import APIRouter

from app.api import API_V1_PREFIX
from app.api.v1.private.task_routes import TaskEndpoint, add_task_routes
from app.core.producer.catalog import Catalog
from app.schemas.task import IntegerIn, IntegersIn, LongRunningIn, WorkflowIn

TASK_ENDPOINTS = [
    TaskEndpoint(
        "/tasks/integer-multiplication",
        IntegerIn,
        Catalog.integer_multiplication,
        "Double an integer",
    ),
    TaskEndpoint("/tasks/integers-sum", IntegersIn, Catalog.integers_sum, "Sum integers"),
    TaskEndpoint(
        "/tasks/long-running",
        LongRunningIn,
        Catalog.long_running,
        "Work for `seconds`, reporting PROGRESS after each of `steps` steps",
    ),
    TaskEndpoint(
        "/workflows/chain",
        WorkflowIn,
        Catalog.chain,
        "Double `integer` `size` + 1 times in a chain",
    ),
    TaskEndpoint(
        "/workflows/group", WorkflowIn, Catalog.group, "Double `integer` `size` times in parallel"
    ),
    TaskEndpoint(
        "/workflows/chord",
        WorkflowIn,
        Catalog.chord,
        "Sum the parallel doublings of `integer`, `size` of them",
    ),
]

router = APIRouter(prefix=API_V1_PREFIX)
add_task_routes(router, TASK_ENDPOINTS)
