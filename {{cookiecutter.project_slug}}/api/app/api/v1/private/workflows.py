"""Canvas workflows of the integer tasks, body {"integer": n, "size": k}:

- chain: n doubled k + 1 times, one task after the other: n * 2 ** (k + 1);
- group: k doublings of n side by side: [2n] * k;
- chord: that group, then the sum of its results: 2n * k.
"""

from fastapi import APIRouter

from app.api import API_V1_PREFIX
from app.api.v1.private.task_routes import TaskEndpoint, add_task_routes
from app.core.producer.catalog import Catalog
from app.schemas.task import WorkflowIn

router = APIRouter(prefix=f"{API_V1_PREFIX}/workflows")

WORKFLOW_ENDPOINTS = [
    TaskEndpoint(
        "/chain", WorkflowIn, Catalog.chain, "Double `integer` `size` + 1 times in a chain"
    ),
    TaskEndpoint("/group", WorkflowIn, Catalog.group, "Double `integer` `size` times in parallel"),
    TaskEndpoint(
        "/chord",
        WorkflowIn,
        Catalog.chord,
        "Sum the parallel doublings of `integer`, `size` of them",
    ),
]
add_task_routes(router, WORKFLOW_ENDPOINTS)
