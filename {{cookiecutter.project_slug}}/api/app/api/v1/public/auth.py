"""Log in (OAuth2 password flow) and, when the settings allow it, sign up."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from app.api import API_V1_PREFIX
from app.api.accounts import create_account
from app.api.deps import SessionDep, SettingsDep
from app.core.security import create_access_token
from app.schemas.token import Token
from app.schemas.user import UserCreate, UserPublic
from app.services.users import authenticate

router = APIRouter(prefix=f"{API_V1_PREFIX}/auth")


@router.post("/token", summary="Exchange an e-mail (as username) and password for a token")
async def login(
    session: SessionDep,
    settings: SettingsDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    user = await authenticate(session, form.username, form.password)
    if user is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Incorrect e-mail or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not user.is_active:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="Inactive user")
    return Token(access_token=create_access_token(user.id, settings))


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account (only when OPEN_REGISTRATION is on)",
)
async def register(session: SessionDep, settings: SettingsDep, body: UserCreate) -> UserPublic:
    if not settings.OPEN_REGISTRATION:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="Registration is closed")
    return await create_account(session, body)
