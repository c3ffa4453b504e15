"""The endpoint table agrees with the Catalog: checked without any service."""

import inspect

import pytest

from app.api.v1.private.task_endpoints import TASK_ENDPOINTS
from app.api.v1.private.task_routes import TaskEndpoint


def test_every_endpoint_has_a_name_of_its_own() -> None:
    names = [endpoint.name for endpoint in TASK_ENDPOINTS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("endpoint", TASK_ENDPOINTS, ids=lambda endpoint: endpoint.name)
def test_body_fields_are_the_catalog_methods_keyword_arguments(endpoint: TaskEndpoint) -> None:
    parameters = inspect.signature(endpoint.catalog_method).parameters
    keywords = {
        name
        for name, parameter in parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "expires"
    }
    assert keywords == set(endpoint.body.model_fields)
