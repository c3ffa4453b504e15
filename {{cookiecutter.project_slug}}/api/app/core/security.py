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


class InvalidTokenError(Exception):
    """The token is malformed, expired, wrongly signed or not an access token."""


class HashingBusyError(Exception):
    """Too many password checks are waiting: try again later."""


def create_access_token(subject: uuid.UUID, settings: Settings) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(subject),
        "iat": now,
        "exp": now + timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES),
        "type": ACCESS_TOKEN_TYPE,
        # A token another service signed with a shared key is not one of ours.
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
    }
    key = settings.SECRET_KEY.get_secret_value()
    return jwt.encode(claims, key, algorithm=settings.JWT_ALGORITHM)


def decode_access_token(token: str, settings: Settings) -> uuid.UUID:
    """The id of the user the token was issued to, or InvalidTokenError."""
    key, algorithm = settings.SECRET_KEY.get_secret_value(), settings.JWT_ALGORITHM
    try:
        subject, token_type, expires = verified_claims(
            token, key, algorithm, settings.JWT_ISSUER, settings.JWT_AUDIENCE
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


# Signature and claims checked once per token (it costs more than the rest of the
# request), then its expiry only; with the key an argument, never under another key.
@lru_cache(maxsize=10_000)
def verified_claims(
    token: str, key: str, algorithm: str, issuer: str, audience: str
) -> tuple[str, object, float]:
    """The subject, type and expiry of a valid token; jwt.PyJWTError otherwise."""
    claims = jwt.decode(
        token,
        key,
        # Only the configured algorithm: no "none", no algorithm swap.
        algorithms=[algorithm],
        issuer=issuer,
        audience=audience,
        options={"require": ["exp", "iat", "sub", "iss", "aud"]},
    )
    return claims["sub"], claims.get("type"), float(claims["exp"])


# Argon2 is slow and big (64 MiB) on purpose: in the thread pool, one hash per core
# at most (more gain nothing, cost memory); others wait HASHING_WAIT s, then get 503.
HASHING_SLOTS = os.cpu_count() or 2
HASHING_WAIT = 10.0
# A semaphore belongs to the event loop that first waits on it: one per loop
# (`make migrate`, scripts and tests run loops of their own).
_slots: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = (
    weakref.WeakKeyDictionary()
)


def hashing_slots() -> asyncio.Semaphore:
    return _slots.setdefault(asyncio.get_running_loop(), asyncio.Semaphore(HASHING_SLOTS))


async def in_hashing_slot(work: Callable[..., Hashed], *args: str | None) -> Hashed:
    slots = hashing_slots()
    try:
        async with asyncio.timeout(HASHING_WAIT):
            await slots.acquire()
    except TimeoutError:
        raise HashingBusyError from None
    try:
        return await run_in_threadpool(work, *args)
    finally:
        slots.release()


async def hash_password(password: str) -> str:
    return await in_hashing_slot(password_hash.hash, password)


@lru_cache
def dummy_hash() -> str:
    """Checked when no user has the e-mail: an unknown e-mail costs the time of a
    wrong password, so the answer time tells no account apart."""
    return password_hash.hash("not a password anybody has")


def _verify_blocking(password: str, hashed: str | None) -> bool:
    return password_hash.verify(password, hashed or dummy_hash()) and hashed is not None


async def verify_password(password: str, hashed: str | None) -> bool:
    return await in_hashing_slot(_verify_blocking, password, hashed)
