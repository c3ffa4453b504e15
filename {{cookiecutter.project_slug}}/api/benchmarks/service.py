"""The service's side of a benchmark run: the configured settings on a
database of the run's own beside the configured one (migrated, then dropped)
and with a secret key of its own, so that a run never touches a service's
data; and a user of it with a token."""

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.core.config import Settings, get_settings
from app.core.security import create_access_token, password_hash
from app.models import User
from testkit import database_beside
from testkit.migrations import migrated_database


@contextmanager
def bench_service(**changes: str | int) -> Iterator[tuple[Settings, dict[str, str]]]:
    """The run's settings, with these changes, for this process; and the
    environment that gives an API process the same (the run's database and
    secret key, and the changes)."""
    configured = get_settings()
    secret = secrets.token_urlsafe(32)
    with migrated_database(
        database_beside(configured.POSTGRES_DATABASE_URL, "bench")
    ) as database_url:
        own = {"POSTGRES_DATABASE_URL": database_url, "SECRET_KEY": secret, **changes}
        settings = configured.model_copy(update={**own, "SECRET_KEY": SecretStr(secret)})
        yield settings, {name: str(value) for name, value in own.items()}


def bench_user(settings: Settings) -> tuple[User, str]:
    """A user of the run's database, and an access token for it."""
    user = asyncio.run(create_user(settings.POSTGRES_DATABASE_URL))
    return user, create_access_token(user.id, settings)


async def create_user(database_url: str) -> User:
    engine = create_async_engine(database_url)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            user = User(email="bench@example.com", hashed_password=password_hash.hash("bench"))
            session.add(user)
            await session.commit()
            return user
    finally:
        await engine.dispose()
