"""Dependencies of the routes, as Annotated aliases: `session: SessionDep`. They take
an HTTPConnection, so that routes of every protocol share them, and are async even
if they await nothing: FastAPI runs a plain function in its thread pool."""

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, HTTPException, status
from fastapi.requests import HTTPConnection
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.api import API_V1_PREFIX
from app.core.config import Settings
from app.core.db import open_session
from app.core.security import InvalidTokenError
from app.services.accounts import Account, AccountCache, InactiveUserError, account_for_token
from taskengine import TaskEngine

TOKEN_URL = f"{API_V1_PREFIX}/auth/token"
# auto_error=False: a missing token gets the same 401 and header as a bad one.
bearer_token = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


async def app_settings(connection: HTTPConnection) -> Settings:
    """The settings the app was created with (tests create apps with their own)."""
    return cast(Settings, connection.app.state.settings)


async def get_session(connection: HTTPConnection) -> AsyncIterator[AsyncSession]:
    """A session per request: what a route does not commit is rolled back."""
    async with open_session(connection.app.state.sessionmaker) as session:
        yield session


async def account_cache(connection: HTTPConnection) -> AccountCache:
    return cast(AccountCache, connection.app.state.account_cache)


async def task_engine(connection: HTTPConnection) -> TaskEngine:
    return cast(TaskEngine, connection.app.state.task_engine)


async def get_current_user(
    connection: HTTPConnection, token: Annotated[str | None, Depends(bearer_token)]
) -> Account:
    # The state read here, not through two more dependencies: every private request solves this.
    state = connection.app.state
    try:
        if token is None:
            raise InvalidTokenError("Not authenticated")
        return await account_for_token(state.account_cache, token, state.settings)
    except InvalidTokenError as error:
        # One answer for every kind of bad token: the reason helps only an attacker.
        detail = "Not authenticated" if token is None else "Could not validate credentials"
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
        ) from error
    except InactiveUserError:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Inactive user") from None


CurrentUser = Annotated[Account, Depends(get_current_user)]


async def get_current_superuser(user: CurrentUser) -> Account:
    if not user.is_superuser:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Superuser privileges required")
    return user


SettingsDep = Annotated[Settings, Depends(app_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
AccountCacheDep = Annotated[AccountCache, Depends(account_cache)]
TaskEngineDep = Annotated[TaskEngine, Depends(task_engine)]
SuperUser = Annotated[Account, Depends(get_current_superuser)]
