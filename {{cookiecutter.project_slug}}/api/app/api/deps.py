"""Dependencies of the routes, as Annotated aliases: `session: SessionDep`."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.api import API_V1_PREFIX
from app.core.config import Settings
from app.core.security import InvalidTokenError, decode_access_token
from app.models import User
from app.services.tasks import TaskRunner

TOKEN_URL = f"{API_V1_PREFIX}/auth/token"

# auto_error=False: a missing token gets the same 401 and header as a bad one.
bearer_token = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


def app_settings(request: Request) -> Settings:
    """The settings the app was created with (tests create apps with their own)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(app_settings)]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session per request. Routes commit what they mean to keep; anything
    else, and everything after an error, is rolled back when the session closes."""
    async with request.app.state.sessionmaker() as session:
        try:
            yield session
        except Exception:
            await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def get_current_user(
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(bearer_token)],
) -> User:
    if token is None:
        raise unauthorized("Not authenticated")
    try:
        user_id = decode_access_token(token, settings)
    except InvalidTokenError:
        # One answer for every kind of bad token: the reason helps only an attacker.
        raise unauthorized("Could not validate credentials") from None
    user = await session.get(User, user_id)
    if user is None:
        raise unauthorized("Could not validate credentials")
    if not user.is_active:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="Inactive user")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_current_superuser(user: CurrentUser) -> User:
    if not user.is_superuser:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail="Superuser privileges required"
        )
    return user


SuperUser = Annotated[User, Depends(get_current_superuser)]


def get_task_runner(request: Request) -> TaskRunner:
    runner: TaskRunner = request.app.state.task_runner
    return runner


TaskRunnerDep = Annotated[TaskRunner, Depends(get_task_runner)]
