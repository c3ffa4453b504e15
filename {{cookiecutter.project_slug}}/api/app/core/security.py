"""Access tokens (JWT) and password hashes."""

import asyncio
import os
import time
import uuid
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TypeVar

import jwt
from fastapi.concurrency import run_in_threadpool
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from app.core.config import Settings

ACCESS_TOKEN_TYPE = "access"
Hashed = TypeVar("Hashed")

password_hash = PasswordHash((Argon2Hasher(),))


@lru_cache
def dummy_hash() -> str:
    """Checked when an e-mail matches no user, so an unknown e-mail costs the
    same time as a wrong password and the answer time does not reveal which
    accounts exist. Made on first use, in the thread pool, not at import."""
    return password_hash.hash("not a password anybody has")


class InvalidTokenError(Exception):
    """The token is malformed, expired, wrongly signed or not an access token."""


def create_access_token(subject: uuid.UUID, settings: Settings) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(subject),
        "iat": now,
        "exp": now + timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES),
        "type": ACCESS_TOKEN_TYPE,
        # Who issued the token and for whom: a token another service signed
        # with a shared key is not one of ours.
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
    }
    return jwt.encode(
        claims, settings.SECRET_KEY.get_secret_value(), algorithm=settings.JWT_ALGORITHM
    )


def decode_access_token(token: str, settings: Settings) -> uuid.UUID:
    """Return the user id the token was issued to, or raise InvalidTokenError."""
    try:
        subject, token_type, expires = verified_claims(
            token,
            settings.SECRET_KEY.get_secret_value(),
            settings.JWT_ALGORITHM,
            settings.JWT_ISSUER,
            settings.JWT_AUDIENCE,
        )
    except jwt.PyJWTError as error:
        raise InvalidTokenError(str(error)) from error
    # What jwt.decode checked of the time, checked again for a token verified earlier.
    if time.time() >= expires:
        raise InvalidTokenError("Signature has expired")
    if token_type != ACCESS_TOKEN_TYPE:
        raise InvalidTokenError("not an access token")
    try:
        return uuid.UUID(subject)
    except ValueError as error:
        raise InvalidTokenError("malformed subject") from error


# A client sends the same token with every request until it expires: its
# signature and claims are checked once, then only its expiry (the check costs
# more than the rest of an authenticated request). Only tokens that passed
# are kept; the key is among the arguments, so a token is never taken as
# verified under another key.
@lru_cache(maxsize=10_000)
def verified_claims(
    token: str, key: str, algorithm: str, issuer: str, audience: str
) -> tuple[str, object, float]:
    """The subject, type and expiry of a valid token; jwt.PyJWTError otherwise."""
    # Only the configured algorithm is accepted: no "none", no algorithm swap.
    claims = jwt.decode(
        token,
        key,
        algorithms=[algorithm],
        issuer=issuer,
        audience=audience,
        options={"require": ["exp", "iat", "sub", "iss", "aud"]},
    )
    return claims["sub"], claims.get("type"), float(claims["exp"])


# Argon2 is deliberately slow (tens of milliseconds of CPU) and big (64 MiB
# each): hash and verify in the thread pool, so the event loop keeps serving,
# and no more at once than there are cores, since more gain nothing and cost
# memory. Others wait in line for up to HASHING_WAIT seconds, then get 503.
# Per process: with API_WORKERS processes, that many times (os.cpu_count()
# counts the host's cores, not a container's CPU quota).
HASHING_SLOTS = os.cpu_count() or 2
HASHING_WAIT = 10.0
# One line per event loop: an asyncio semaphore belongs to the loop that first
# waits on it (`make migrate`, scripts and tests run loops of their own).
_lines: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = (
    weakref.WeakKeyDictionary()
)


def hashing_line() -> asyncio.Semaphore:
    """The hashing slots of the running event loop."""
    loop = asyncio.get_running_loop()
    if loop not in _lines:
        _lines[loop] = asyncio.Semaphore(HASHING_SLOTS)
    return _lines[loop]


class HashingBusyError(Exception):
    """Too many password checks are waiting: try again later."""


async def in_hashing_slot(work: Callable[..., Hashed], *args: str | None) -> Hashed:
    line = hashing_line()
    try:
        async with asyncio.timeout(HASHING_WAIT):
            await line.acquire()
    except TimeoutError:
        raise HashingBusyError from None
    try:
        return await run_in_threadpool(work, *args)
    finally:
        line.release()


async def hash_password(password: str) -> str:
    return await in_hashing_slot(password_hash.hash, password)


def _verify_blocking(password: str, hashed: str | None) -> bool:
    """With no hash (unknown user), check a dummy one and fail."""
    matches = password_hash.verify(password, hashed or dummy_hash())
    return matches and hashed is not None


async def verify_password(password: str, hashed: str | None) -> bool:
    return await in_hashing_slot(_verify_blocking, password, hashed)
