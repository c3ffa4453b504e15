"""Canvas workflows of the integer tasks, body {"integer": n, "size": k}:

- chain: n doubled k + 1 times, one task after the other: n * 2 ** (k + 1);
- group: k doublings of n side by side: [2n] * k;
- chord: that group, then the sum of its results: 2n * k.
"""

from typing import Literal

from fastapi import APIRouter, Response, status

from app.api import API_V1_PREFIX
from app.api.deps import CurrentUser, SessionDep, TaskRunnerDep
from app.api.v1.private.tasks import WAITING_RESPONSES, accepted
from app.schemas.task import TaskAccepted, TaskReply, WorkflowIn

router = APIRouter(prefix=f"{API_V1_PREFIX}/workflows")

Workflow = Literal["chain", "group", "chord"]


@router.post("/{workflow}", summary="Run a workflow and wait", responses=WAITING_RESPONSES)
async def run_workflow(
    workflow: Workflow,
    body: WorkflowIn,
    session: SessionDep,
    user: CurrentUser,
    runner: TaskRunnerDep,
) -> TaskReply:
    return await runner.wait(
        session, user, workflow, getattr(runner.catalog, workflow), body.integer, body.size
    )


@router.post(
    "/{workflow}/async",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a workflow; poll GET /tasks/{task_id}",
)
async def start_workflow(
    workflow: Workflow,
    body: WorkflowIn,
    response: Response,
    session: SessionDep,
    user: CurrentUser,
    runner: TaskRunnerDep,
) -> TaskAccepted:
    task_id = await runner.submit(
        session, user, workflow, getattr(runner.catalog, workflow), body.integer, body.size
    )
    return accepted(response, task_id)
