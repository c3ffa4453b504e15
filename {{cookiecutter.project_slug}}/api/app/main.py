"""Application factory: the ASGI app that uvicorn serves is `app.main:app`."""

from fastapi import FastAPI

from app.api.v1 import api_router
from app.core.config import Settings, get_settings

API_V1_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title=settings.PROJECT_NAME,
        version="{{ cookiecutter.version }}",
        openapi_url=f"{API_V1_PREFIX}/openapi.json",
    )
    app.include_router(api_router, prefix=API_V1_PREFIX)
    return app


app = create_app()
