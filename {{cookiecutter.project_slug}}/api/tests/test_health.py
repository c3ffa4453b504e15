from httpx import AsyncClient


async def test_health_answers_ok(client: AsyncClient) -> None:
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_openapi_lists_the_versioned_routes(client: AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert "/api/v1/health" in response.json()["paths"]


async def test_unknown_route_is_404(client: AsyncClient) -> None:
    response = await client.get("/api/v1/no-such-route")
    assert response.status_code == 404
