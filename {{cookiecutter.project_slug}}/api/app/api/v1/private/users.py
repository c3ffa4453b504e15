"""Accounts: your own, and every account for superusers."""

import uuid

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import func, select

from app.api import API_V1_PREFIX
from app.api.accounts import ACCOUNT_CREATION, create_account
from app.api.deps import AccountCacheDep, CurrentUser, SessionDep, SuperUser
from app.api.responses import error
from app.models import User
from app.schemas.page import Limit, Offset, Page
from app.schemas.user import UserCreate, UserPublic, UserUpdate
from app.services.users import LastSuperuserError, update_account

router = APIRouter(prefix=f"{API_V1_PREFIX}/users")
LAST_SUPERUSER = "The last active superuser cannot be demoted or deactivated"


@router.get("/me", summary="The account the token belongs to")
async def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@router.get("", summary="Every account, oldest first (superusers)")
async def list_users(
    session: SessionDep, _: SuperUser, offset: Offset = 0, limit: Limit = 50
) -> Page[UserPublic]:
    total = await session.scalar(select(func.count()).select_from(User)) or 0
    oldest_first = select(User).order_by(User.created_at, User.id)
    users = await session.scalars(oldest_first.offset(offset).limit(limit))
    items = [UserPublic.model_validate(user) for user in users]
    return Page(items=items, total=total, offset=offset, limit=limit)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account (superusers)",
    responses=ACCOUNT_CREATION,
)
async def create_user(session: SessionDep, _: SuperUser, body: UserCreate) -> UserPublic:
    return await create_account(session, body)


@router.patch(
    "/{user_id:uuid}",
    summary="Activate, deactivate, promote or demote (superusers)",
    responses={
        404: error("No account has this id"),
        409: error(LAST_SUPERUSER),
    },
)
async def update_user(
    session: SessionDep,
    accounts: AccountCacheDep,
    _: SuperUser,
    user_id: uuid.UUID,
    body: UserUpdate,
) -> UserPublic:
    user = await session.get(User, user_id)
    if user is None:
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="User not found")
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    try:
        await update_account(session, user, changes)
    except LastSuperuserError:
        raise HTTPException(status.HTTP_409_CONFLICT, LAST_SUPERUSER) from None
    # At once here; other processes within ACCOUNT_CACHE_SECONDS (services/accounts.py).
    accounts.forget(user.id)
    return UserPublic.model_validate(user)
