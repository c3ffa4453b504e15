"""Accounts: creation and authentication, shared by the routes and `make migrate`."""

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import hash_password, verify_password
from app.models import User


class EmailTakenError(Exception):
    """Another account already uses this e-mail address."""


class LastSuperuserError(Exception):
    """The change would leave no active superuser to manage the accounts."""


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.lower()))


async def create_user(
    session: AsyncSession, email: str, password: str, *, is_superuser: bool = False
) -> User:
    """Add and commit an account; EmailTakenError if the e-mail is in use."""
    # The hash may wait in line: hold no database connection meanwhile.
    await session.commit()
    hashed = await hash_password(password)
    user = User(email=email.lower(), hashed_password=hashed, is_superuser=is_superuser)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as error:
        # The unique index decides, so two concurrent sign-ups cannot both win.
        await session.rollback()
        raise EmailTakenError(email) from error
    return user


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    """The account with this e-mail and password, or None; same cost either way."""
    user = await get_by_email(session, email)
    # The connection given back before the hash check: logins in line must not hold the pool.
    await session.commit()
    if not await verify_password(password, user.hashed_password if user else None):
        return None
    return user


async def update_account(session: AsyncSession, user: User, changes: dict[str, bool]) -> User:
    """Apply is_active / is_superuser changes and commit; LastSuperuserError if
    they would leave no active superuser (nobody could then undo them)."""
    # Every active superuser locked, in one order (two superusers demoting each
    # other at once wait instead of deadlocking); then the target read again.
    superusers = set(
        await session.scalars(
            select(User.id)
            .where(User.is_superuser, User.is_active)
            .order_by(User.id)
            .with_for_update()
        )
    )
    await session.refresh(user)
    loses_rights = user.id in superusers and not all(changes.values())
    if loses_rights and superusers == {user.id}:
        raise LastSuperuserError(user.id)
    for field, value in changes.items():
        setattr(user, field, value)
    await session.commit()
    return user
