"""Canvas workflows of the integer tasks, body {"integer": n, "size": k}:

- chain: n doubled k + 1 times, one task after the other: n * 2 ** (k + 1);
- group: k doublings of n side by side: [2n] * k;
- chord: that group, then the sum of its results: 2n * k.
"""

from fastapi import APIRouter

from app.api import API_V1_PREFIX
from app.api.v1.private.twins import add_twins
from app.schemas.task import WorkflowIn

router = APIRouter(prefix=f"{API_V1_PREFIX}/workflows")

add_twins(
    router,
    "/chain",
    "chain",
    WorkflowIn,
    lambda catalog: catalog.chain,
    "Double `integer` `size` + 1 times in a chain",
)
add_twins(
    router,
    "/group",
    "group",
    WorkflowIn,
    lambda catalog: catalog.group,
    "Double `integer` `size` times in parallel",
)
add_twins(
    router,
    "/chord",
    "chord",
    WorkflowIn,
    lambda catalog: catalog.chord,
    "Sum the parallel doublings of `integer`, `size` of them",
)
