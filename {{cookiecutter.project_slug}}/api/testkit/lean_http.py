"""HTTP/1.1 over raw asyncio streams, for loads: keep-alive connections, one
request in flight on each.

httpx or aiohttp spend more CPU per request than a FastAPI endpoint does, and a
load they generate would measure themselves: in the task flood (task_flood.py)
httpx took more CPU than the API it loaded (7.6 ms against 6.8 ms per task).
"""

import asyncio
from urllib.parse import urlsplit


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one response whole; return its status code and its body."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split()[1])
    length, chunked = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    chunks = []
    while size := int((await reader.readline()).strip(), 16):
        chunks.append((await reader.readexactly(size + 2))[:-2])  # the chunk, not its CRLF
    await reader.readline()  # the CRLF after the last, empty chunk
    return status, b"".join(chunks)


def build_request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class LeanConnection:
    """One keep-alive connection to `base` (http://host:port), opened on first
    use and again after it broke."""

    def __init__(self, base: str) -> None:
        self.base = base
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        """Send one request, read its response. A connection that breaks
        raises ConnectionError, and the next request opens a new one."""
        if self._streams is None:
            parts = urlsplit(self.base)
            self._streams = await asyncio.open_connection(parts.hostname, parts.port)
        reader, writer = self._streams
        try:
            writer.write(build_request(self.base + path, method, headers, body))
            return await read_response(reader)
        except (OSError, EOFError) as error:
            self.close()
            raise ConnectionError(f"{method} {path}: {error!r}") from error

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None
