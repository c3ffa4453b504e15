"""Application factory: the ASGI app that uvicorn serves is `app.main:app`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy import make_url

from app.api import API_V1_PREFIX
from app.api.v1 import API_DESCRIPTION, include_api_routes
from app.core.attempts import AttemptLimiter
from app.core.config import Settings, get_settings
from app.core.db import create_engine, create_sessionmaker
from app.core.errors import add_error_handlers
from app.services.accounts import AccountCache
from asgi import metrics
from asgi.body_limit import BodySizeLimit
from asgi.docs_pages import add_docs_pages
from taskengine import open_engine

OPENAPI_TAGS = [
    {"name": "public", "description": "No credentials needed."},
    {
        "name": "private",
        "description": "A bearer token is needed: use Authorize, or POST /api/v1/auth/token.",
    },
]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the clients once per process and close them when it stops."""
    settings: Settings = app.state.settings
    db_engine = create_engine(settings)
    app.state.db_engine = db_engine
    app.state.sessionmaker = create_sessionmaker(db_engine)
    app.state.account_cache = AccountCache(app.state.sessionmaker, settings.ACCOUNT_CACHE_SECONDS)
    try:
        async with open_engine(settings.engine_config()) as task_engine:
            app.state.task_engine = task_engine
            # The engine's Redis pool serves the login limits and the readiness probe too.
            app.state.redis = task_engine.redis
            app.state.attempt_limiter = AttemptLimiter(
                task_engine.redis,
                settings.CELERY_RESULT_BACKEND_URL,
                # Per deployment (its database): services sharing a Redis count apart.
                key_prefix=f"login-attempts:{make_url(settings.POSTGRES_DATABASE_URL).database}",
                per_address=settings.LOGIN_ATTEMPTS_PER_ADDRESS,
                per_account=settings.LOGIN_ATTEMPTS_PER_ACCOUNT,
            )
            yield
    finally:
        await db_engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title=settings.PROJECT_NAME,
        description=API_DESCRIPTION,
        version="{{ cookiecutter.version }}",
        openapi_url=f"{API_V1_PREFIX}/openapi.json",
        openapi_tags=OPENAPI_TAGS,
        # Served by add_docs_pages instead, with nothing loaded from elsewhere.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    include_api_routes(app)
    add_docs_pages(app)
    add_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.MAX_BODY_SIZE)
    if settings.CORS_ORIGINS:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.CORS_ORIGINS,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type"],
        )
    if settings.METRICS_ENABLED:
        # On the app itself, so it is served at the root: GET /metrics.
        app.add_api_route("/metrics", metrics.metrics, include_in_schema=False)
        # Added last, so it is the outermost middleware and times everything.
        app.add_middleware(metrics.PrometheusMiddleware)
    return app


app = create_app()
