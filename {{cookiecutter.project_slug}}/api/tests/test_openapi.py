from httpx import AsyncClient

from app.api.deps import TOKEN_URL


async def test_private_routes_declare_the_token_endpoint(client: AsyncClient) -> None:
    schema = (await client.get("/api/v1/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    (scheme,) = schemes.values()
    assert scheme["flows"]["password"]["tokenUrl"] == TOKEN_URL
    assert TOKEN_URL in schema["paths"]

    for path, operations in schema["paths"].items():
        for operation in operations.values():
            tags = operation["tags"]
            if "private" in tags:
                assert operation.get("security"), path
            else:
                assert tags == ["public"], path
                assert "security" not in operation, path
    assert "private" in schema["paths"]["/api/v1/users/me"]["get"]["tags"]
    assert "public" in schema["paths"]["/api/v1/health/ready"]["get"]["tags"]
