"""Request bodies larger than MAX_BODY_SIZE are refused with 413, unread.

Pure ASGI, in front of the routes: a body is read and parsed before the token
is checked, so without a limit an anonymous client could make the API hold any
amount of JSON. A declared Content-Length over the limit is refused before a
byte is read; a chunked body is cut off as soon as it goes over.
"""

import json
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOO_LARGE = json.dumps({"detail": "Request body too large"}).encode()


class BodyTooLargeError(HTTPException):
    """Raised from the body's stream: an HTTP error, so that FastAPI, which
    turns other errors of a body into 400, answers it as it is."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="Request body too large")


class BodySizeLimit:
    def __init__(
        self, app: ASGIApp, max_bytes: int, larger_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Path -> its own limit, for a route that needs more (an upload, say).
        self.larger_limits = dict(larger_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger_limits.get(scope["path"], self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await refuse(send)
            return

        received = 0
        answering = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError
            return message

        async def watched_send(message: Message) -> None:
            nonlocal answering
            answering = answering or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLargeError:
            if answering:
                raise  # too late to answer 413: let the server drop the connection
            await refuse(send)


async def refuse(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(TOO_LARGE)).encode()),
                # The rest of the body is not read: the client must not reuse the connection.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": TOO_LARGE})
