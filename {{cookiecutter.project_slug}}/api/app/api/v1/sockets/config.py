"""Settings of the WebSockets, read like the API's own (app/core/config.py)."""

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.config import ENV_FILE


class SocketSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore")

    # Seconds a new socket has to send its token before it is closed.
    WS_AUTH_TIMEOUT: float = Field(default=5.0, gt=0)
    # Sockets one user may hold open at once, across every API process.
    WS_SOCKETS_PER_USER: int = Field(default=10, gt=0)
    # Replies queued for a slow reader; past it, the oldest intermediate one is dropped.
    WS_QUEUE_SIZE: int = Field(default=32, gt=1)


@lru_cache
def get_socket_settings() -> SocketSettings:
    return SocketSettings()
