"""Log in (OAuth2 password flow) and, when the settings allow it, sign up."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from app.api import API_V1_PREFIX
from app.api.accounts import ACCOUNT_CREATION, create_account
from app.api.deps import SessionDep, SettingsDep
from app.api.responses import Responses, error
from app.core.attempts import AttemptLimiter, TooManyAttemptsError
from app.core.security import create_access_token
from app.schemas.token import Token
from app.schemas.user import UserCreate, UserPublic
from app.services.users import authenticate

router = APIRouter(prefix=f"{API_V1_PREFIX}/auth")

ATTEMPT_RESPONSES: Responses = {
    429: error("Too many attempts from this address or for this account"),
    503: error("Too many password checks at once"),
}


async def count_attempt(request: Request, action: str, account: str | None = None) -> None:
    """Count the attempt before any password is hashed; 429 over a limit."""
    limiter: AttemptLimiter = request.app.state.attempt_limiter
    address = request.client.host if request.client else "unknown"
    try:
        await limiter.attempt(action, address, account)
    except TooManyAttemptsError as error:
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail="Too many attempts; try again later",
            headers={"Retry-After": str(error.retry_after)},
        ) from None


# The longest e-mail address (RFC 5321).
MAX_EMAIL_LENGTH = 320


def incorrect_credentials() -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="Incorrect e-mail or password",
        headers={"WWW-Authenticate": "Bearer"},
    )


@router.post(
    "/token",
    summary="Exchange an e-mail (as username) and password for a token",
    responses={
        401: error("Incorrect e-mail or password"),
        403: error("Inactive user"),
        **ATTEMPT_RESPONSES,
    },
)
async def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> Token:
    if len(form.username) > MAX_EMAIL_LENGTH or "\x00" in form.username:
        # No account has it (PostgreSQL's text holds no NUL): not worth a key in Redis or a query.
        await count_attempt(request, "login")
        raise incorrect_credentials()
    await count_attempt(request, "login", form.username)
    user = await authenticate(session, form.username, form.password)
    if user is None:
        raise incorrect_credentials()
    if not user.is_active:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="Inactive user")
    return Token(access_token=create_access_token(user.id, settings))


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account (only when OPEN_REGISTRATION is on)",
    responses={403: error("Registration is closed"), **ATTEMPT_RESPONSES, **ACCOUNT_CREATION},
)
async def register(
    request: Request, session: SessionDep, settings: SettingsDep, body: UserCreate
) -> UserPublic:
    if not settings.OPEN_REGISTRATION:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="Registration is closed")
    await count_attempt(request, "register")
    return await create_account(session, body)
