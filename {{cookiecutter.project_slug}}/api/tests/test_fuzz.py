"""Property-based fuzz of the whole HTTP API (schemathesis), from its own
OpenAPI document: for every operation, generated requests, valid and not,
sent with a real token to a real API process and worker. Each answer must be
no server error, a status the document lists for the route, of the documented
content type and, where it is documented, of the documented shape.

A fixed seed and a bounded number of examples per operation keep the run
repeatable and short.
"""

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.core.config import Settings
from app.core.security import create_access_token
from app.models import User
from benchmarks.servers import api_process

# 503 and 504 are documented answers of the task routes (a dependency down, a
# task slower than TASK_WAIT_TIMEOUT), not errors of the server: a 500 is,
# checked in call() below. Undocumented statuses fail status_code_conformance.
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_api(database_url: str, worker: str) -> Iterator[str]:
    # A waiting request gives up after a second: what it answers is the point.
    with api_process(TASK_WAIT_TIMEOUT="1") as (base, _):
        yield base


@pytest.fixture
async def token(make_user, settings: Settings) -> str:
    user: User = await make_user(is_superuser=True)
    return create_access_token(user.id, settings)


def fuzz(operation: schemathesis.APIOperation, base: str, token: str) -> None:
    """Hypothesis runs the operation's generated cases; the first failure raises."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=15,
        derandomize=True,  # the same cases on every run
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
        )
        assert response.status_code != 500, f"{case.method} {case.path}: {response.text}"

    call()


def test_every_answer_is_documented_and_never_a_server_error(fuzzed_api: str, token: str) -> None:
    # Loaded here, not through schemathesis' pytest plugin, which follows
    # pytest's internals and breaks when they change.
    schema = schemathesis.openapi.from_url(f"{fuzzed_api}/api/v1/openapi.json")
    failures, fuzzed = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        fuzzed += 1
        try:
            fuzz(operation, fuzzed_api, token)
        except Exception as error:  # schemathesis raises a group of check failures
            failures.append(f"{operation.label}:\n{error}")
    revoke_what_still_runs(fuzzed_api, token)
    # Health, login, accounts and tasks: every render has at least these.
    assert fuzzed >= 12, "the OpenAPI document lost its operations"
    assert failures == [], "\n\n".join(failures)


def revoke_what_still_runs(base: str, token: str) -> None:
    """The fuzz started tasks that may still run: stop them, so the test worker is
    free for the tests after this one."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        tasks = client.get("/api/v1/tasks", params={"limit": 100}).json()["items"]
        for task in tasks:
            if task["status"] not in ("SUCCESS", "FAILURE", "REVOKED"):
                client.delete(f"/api/v1/tasks/{task['task_id']}")
