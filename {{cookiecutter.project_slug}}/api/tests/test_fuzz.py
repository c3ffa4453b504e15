"""Property-based fuzz of the whole HTTP API (schemathesis), from its own
OpenAPI document: for every operation, generated requests, valid and not,
sent with a real token to a real API process and worker. Each answer must be
no server error, a status the document lists for the route, of the documented
content type and, where it is documented, of the documented shape.

A fixed seed and a bounded number of examples per operation keep the run
repeatable and short.
"""

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.core.config import Settings
from app.core.security import create_access_token
from app.models import User
from benchmarks.servers import api_process

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed_api(database_url: str, worker: str) -> Iterator[str]:
    # A waiting request gives up after a second: what it answers is the point.
    with api_process(TASK_WAIT_TIMEOUT="1") as (base, _):
        yield base


@pytest.fixture(scope="module")
def api_schema(fuzzed_api: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzzed_api}/api/v1/openapi.json")


@pytest.fixture
async def token(make_user, settings: Settings) -> str:
    user: User = await make_user(is_superuser=True)
    return create_access_token(user.id, settings)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=15,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_documented_and_never_a_server_error(
    case: schemathesis.Case, fuzzed_api: str, token: str
) -> None:
    case.call_and_validate(
        base_url=fuzzed_api, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
    )
