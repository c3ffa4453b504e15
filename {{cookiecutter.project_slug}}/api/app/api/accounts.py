"""Account creation as the routes answer it, for superusers and sign-ups alike."""

from fastapi import HTTPException, status
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.responses import Responses, error
from app.schemas.user import UserCreate, UserPublic
from app.services.users import EmailTakenError, create_user

# What the routes that call create_account may answer for it.
ACCOUNT_CREATION: Responses = {
    409: error("E-mail already registered"),
    503: error("Too many password checks at once"),
}


async def create_account(session: AsyncSession, body: UserCreate) -> UserPublic:
    """The new plain account; 409 when its e-mail is taken."""
    try:
        user = await create_user(session, body.email, body.password)
    except EmailTakenError:
        raise HTTPException(status.HTTP_409_CONFLICT, "E-mail already registered") from None
    return UserPublic.model_validate(user)
