"""How often one client address, and one account, may try to log in or sign
up: a sliding window per key in Redis (the `limits` library), shared by every
API process. A request over a limit is refused before its password is hashed."""

import ipaddress
import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis

logger = logging.getLogger(__name__)


class TooManyAttemptsError(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after}s")
        self.retry_after = retry_after


class AttemptLimiter:
    def __init__(
        self, redis: Redis, url: str, key_prefix: str, per_address: str, per_account: str
    ) -> None:
        storage = RedisStorage(
            f"async+{url}",
            implementation="redispy",
            # The shared bounded pool, no connections of the library's own (limits
            # documents this option; its type hint leaves it out).
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
            key_prefix=key_prefix,
        )
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._per_address = parse(per_address)
        self._per_account = parse(per_account)

    async def attempt(self, action: str, address: str, account: str | None = None) -> None:
        """Count one attempt; TooManyAttemptsError over a limit. An account is
        counted with the address it is tried from: one address cannot guess on,
        yet nobody elsewhere can lock its owner out."""
        address = network_of(address)
        checks: list[tuple[RateLimitItem, str]] = [(self._per_address, f"address:{address}")]
        if account is not None:
            checks.append((self._per_account, f"account:{account.lower()}:{address}"))
        for limit, key in checks:
            try:
                if await self._limiter.hit(limit, action, key):
                    continue
                stats = await self._limiter.get_window_stats(limit, action, key)
            except Exception:  # redis raises several unrelated types
                # Logins keep working while Redis is away; only the limit lapses.
                logger.warning("Attempt limits unavailable", exc_info=True)
                return
            raise TooManyAttemptsError(max(1, math.ceil(stats.reset_time - time.time())))


def network_of(address: str) -> str:
    """An IPv6 client holds a whole /64: count the network, not the address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
