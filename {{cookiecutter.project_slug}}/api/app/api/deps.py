"""Dependencies of the routes, as Annotated aliases: `session: SessionDep`."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.requests import HTTPConnection
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.api import API_V1_PREFIX
from app.core.config import Settings
from app.core.db import open_session
from app.core.security import InvalidTokenError
from app.services.account_cache import Account, AccountCache
from app.services.tasks import TaskRunner
from app.services.users import InactiveUserError, account_for_token

TOKEN_URL = f"{API_V1_PREFIX}/auth/token"

# auto_error=False: a missing token gets the same 401 and header as a bad one.
bearer_token = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


# These take an HTTPConnection, so that routes of every protocol share them;
# and they are async even when they await nothing: FastAPI runs a plain
# function in its thread pool, a thread switch on every request.


async def app_settings(connection: HTTPConnection) -> Settings:
    """The settings the app was created with (tests create apps with their own)."""
    settings: Settings = connection.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(app_settings)]


async def get_session(connection: HTTPConnection) -> AsyncIterator[AsyncSession]:
    """A session per request. Routes commit what they mean to keep; anything
    else, and everything after an error, is rolled back when the session closes."""
    async with open_session(connection.app.state.sessionmaker) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def account_cache(connection: HTTPConnection) -> AccountCache:
    accounts: AccountCache = connection.app.state.account_cache
    return accounts


AccountCacheDep = Annotated[AccountCache, Depends(account_cache)]


async def get_current_user(
    connection: HTTPConnection, token: Annotated[str | None, Depends(bearer_token)]
) -> Account:
    # The app's state read here rather than through two more dependencies:
    # every private request solves this one.
    state = connection.app.state
    if token is None:
        raise unauthorized("Not authenticated")
    try:
        return await account_for_token(state.account_cache, token, state.settings)
    except InvalidTokenError:
        # One answer for every kind of bad token: the reason helps only an attacker.
        raise unauthorized("Could not validate credentials") from None
    except InactiveUserError:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="Inactive user") from None


CurrentUser = Annotated[Account, Depends(get_current_user)]


async def get_current_superuser(user: CurrentUser) -> Account:
    if not user.is_superuser:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail="Superuser privileges required"
        )
    return user


SuperUser = Annotated[Account, Depends(get_current_superuser)]


async def get_task_runner(connection: HTTPConnection) -> TaskRunner:
    runner: TaskRunner = connection.app.state.task_runner
    return runner


TaskRunnerDep = Annotated[TaskRunner, Depends(get_task_runner)]
