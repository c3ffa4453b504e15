"""Error answers ({"detail": ...}) documented in OpenAPI for the routes that can
give them: clients, and the fuzz test (tests/test_fuzz.py), rely on the document."""

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    detail: Any


def error(description: str) -> dict[str, Any]:
    return {"model": ErrorDetail, "description": description}


Responses = dict[int | str, dict[str, Any]]

# Any request: the body limit and JSON parsing sit in front of every route.
ANY_REQUEST: Responses = {
    400: error("The body is not JSON that can be read"),
    413: error("The body is larger than MAX_BODY_SIZE"),
}
# Every private route: its bearer token, checked against the database.
PRIVATE: Responses = {
    401: error("No token, or one that is malformed, expired, forged or for another service"),
    403: error("The account is inactive, or the route is for superusers"),
    503: error("A service the API needs (the database...) is unavailable; try again later"),
}
NOT_FOUND: Responses = {404: error("No such row of yours")}
