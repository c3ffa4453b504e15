"""Application factory: the ASGI app that uvicorn serves is `app.main:app`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy import make_url

from app.api import API_V1_PREFIX
from app.api.docs_pages import add_docs_pages
from app.api.v1 import API_DESCRIPTION, include_api_routes
from app.api.v1.private.task_errors import add_task_error_handlers
from app.core import metrics
from app.core.attempts import AttemptLimiter
from app.core.body_limit import BodySizeLimit
from app.core.config import Settings, get_settings
from app.core.db import create_engine, create_sessionmaker
from app.core.errors import add_error_handlers
from app.core.producer.catalog import Catalog
from app.core.producer.client import create_celery_client
from app.core.producer.messages import MessageTemplates
from app.core.producer.publisher import Publisher
from app.core.producer.results import ResultListener
from app.core.producer.revoker import Revoker
from app.core.redis_client import create_redis
from app.services.account_cache import AccountCache
from app.services.in_flight import InFlightLimit
from app.services.record_writer import RecordWriter
from app.services.tasks import TaskRunner

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
    engine = create_engine(settings)
    redis = create_redis(settings)
    celery = create_celery_client(settings)
    publisher = Publisher(
        MessageTemplates(celery),
        redis,
        settings.CELERY_BROKER_URL,
        settings.CELERY_PUBLISH_POOL_SIZE,
        settings.CELERY_PUBLISH_TIMEOUT,
    )
    listener = ResultListener(redis, celery.backend, settings.RESULT_SUBSCRIBE_TIMEOUT)
    # Redis keys per deployment (its database): test runs and services
    # sharing a Redis count apart.
    database = make_url(settings.POSTGRES_DATABASE_URL).database
    app.state.attempt_limiter = AttemptLimiter(
        redis,
        settings.CELERY_RESULT_BACKEND_URL,
        key_prefix=f"login-attempts:{database}",
        per_address=settings.LOGIN_ATTEMPTS_PER_ADDRESS,
        per_account=settings.LOGIN_ATTEMPTS_PER_ACCOUNT,
    )
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.account_cache = AccountCache(app.state.sessionmaker, settings.ACCOUNT_CACHE_SECONDS)
    app.state.redis = redis
    app.state.task_runner = TaskRunner(
        Catalog(celery, settings.CELERY_TASK_QUEUE, settings.CELERY_LONG_TASK_QUEUE),
        publisher,
        listener,
        Revoker(redis),
        InFlightLimit(redis, f"tasks-in-flight:{database}", settings.TASKS_IN_FLIGHT_PER_USER),
        app.state.sessionmaker,
        RecordWriter(
            settings.POSTGRES_DATABASE_URL,
            settings.POSTGRES_CONNECT_TIMEOUT,
            settings.POSTGRES_COMMAND_TIMEOUT,
        ),
        wait_timeout=settings.TASK_WAIT_TIMEOUT,
        expires=settings.TASK_EXPIRES,
        lost_after=settings.TASK_LOST_AFTER,
    )
    try:
        yield
    finally:
        # The runner first: the writes it still flushes tell the listener
        # which results Redis may forget.
        await app.state.task_runner.close()
        await listener.close()
        await publisher.close()
        celery.close()
        await redis.aclose()
        await engine.dispose()


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
    add_task_error_handlers(app)
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
