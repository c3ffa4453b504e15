from fastapi import HTTPException
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Receive, Scope, Send

from app.api.deps import SessionDep
from app.core.config import Settings
from app.main import create_app
from app.models import User
from asgi.body_limit import BodySizeLimit
from tests.conftest import serving


async def test_unexpected_error_is_json_without_a_traceback(settings: Settings) -> None:
    app = create_app(settings)

    async def broken() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    app.add_api_route("/api/v1/broken", broken)
    # Answer as a server would, instead of re-raising into the test.
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/api/v1/broken")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text


async def test_http_errors_share_the_detail_shape(client: AsyncClient) -> None:
    not_found = await client.get("/api/v1/nowhere")
    assert not_found.status_code == 404
    assert not_found.json() == {"detail": "Not Found"}
    wrong_method = await client.delete("/api/v1/health")
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"detail": "Method Not Allowed"}
    invalid = await client.post("/api/v1/auth/token", data={})
    assert invalid.status_code == 422
    assert isinstance(invalid.json()["detail"], list)


async def test_a_failed_request_commits_nothing(settings: Settings, engine: AsyncEngine) -> None:
    app = create_app(settings)

    async def half_done(session: SessionDep) -> None:
        session.add(User(email="half@example.com", hashed_password="x"))
        await session.flush()  # the row exists inside the transaction...
        raise HTTPException(status_code=400, detail="changed my mind")

    app.add_api_route("/api/v1/half-done", half_done, methods=["POST"])
    async with serving(app) as client:
        response = await client.post("/api/v1/half-done")
    assert response.status_code == 400
    async with engine.connect() as connection:  # ...and is gone after the request
        assert await connection.scalar(select(func.count()).select_from(User)) == 0


async def test_a_422_never_echoes_what_was_sent(client: AsyncClient) -> None:
    secret = "correct horse battery staple but far too long " * 4
    response = await client.post(
        "/api/v1/auth/register", json={"email": "not an e-mail", "password": secret}
    )
    assert response.status_code in (403, 422)
    assert secret not in response.text
    invalid = await client.post("/api/v1/auth/token", data={"password": secret})
    assert invalid.status_code == 422
    assert secret not in invalid.text
    problem = invalid.json()["detail"][0]
    assert set(problem) == {"type", "loc", "msg"}
    assert problem["loc"] == ["body", "username"]


async def test_a_request_body_over_the_limit_is_413_before_authentication(
    client: AsyncClient,
) -> None:
    too_large = b"[" + b"1," * (1024 * 1024) + b"1]"
    response = await client.post(
        "/api/v1/tasks/echo",
        content=too_large,
        headers={"Content-Type": "application/json"},  # and no token
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body too large"}


async def test_a_route_can_be_given_a_larger_body_limit() -> None:
    async def echo_size(scope: Scope, receive: Receive, send: Send) -> None:
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})

    limited = BodySizeLimit(echo_size, max_bytes=10, larger_limits={"/uploads": 1000})
    transport = ASGITransport(app=limited)
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/uploads", content=b"x" * 1000)).text == "1000"
        assert (await client.post("/uploads", content=b"x" * 1001)).status_code == 413
        assert (await client.post("/other", content=b"x" * 11)).status_code == 413
        assert (await client.post("/other", content=b"x" * 10)).text == "10"
