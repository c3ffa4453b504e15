"""Bodies over MAX_BODY_SIZE, sent anonymously to a real API process: 413,
before authentication, and the process's memory does not grow with them."""

import asyncio
from collections.abc import Iterator

import pytest

from benchmarks.servers import api_process
from testkit import rss_bytes

DECLARED = 20 * 1024 * 1024  # bytes a request says it will send
AT_ONCE = 8
CHUNK = b"1," * 32 * 1024


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[tuple[str, int]]:
    """The API as its own process, so that its memory is its own."""
    with api_process() as (base, pid):
        yield base.removeprefix("http://"), pid


async def answer_to(address: str, head: str, body: bytes = b"") -> int:
    """Send a request's head and body, anonymously; the status of the answer."""
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"POST /api/v1/tasks/echo HTTP/1.1\r\nHost: {address}\r\n"
            f"Content-Type: application/json\r\n{head}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    return int(status_line.split()[1])


def chunked(size: int) -> bytes:
    """`size` bytes of a JSON list, as chunks, without the final empty chunk."""
    chunks = [b"[", *([CHUNK] * (size // len(CHUNK)))]
    return b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)


async def test_a_declared_big_body_is_413_before_a_byte_is_read(api: tuple[str, int]) -> None:
    address, pid = api
    # Expect: 100-continue, as careful clients send big bodies: they wait for
    # the go-ahead, and get the refusal instead.
    head = f"Content-Length: {DECLARED}\r\nExpect: 100-continue"
    await answer_to(address, head)  # warm up the path
    before = rss_bytes(pid)
    statuses = await asyncio.gather(*(answer_to(address, head) for _ in range(AT_ONCE)))
    grown = rss_bytes(pid) - before
    assert statuses == [413] * AT_ONCE
    assert grown < 4 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB"


async def test_a_streamed_body_is_cut_off_at_the_limit(api: tuple[str, int]) -> None:
    address, pid = api
    # Just over the 1 MiB default: the API stops reading there and answers.
    body = chunked(1024 * 1024 + 4 * len(CHUNK))
    head = "Transfer-Encoding: chunked"
    before = rss_bytes(pid)
    statuses = await asyncio.gather(*(answer_to(address, head, body) for _ in range(AT_ONCE)))
    grown = rss_bytes(pid) - before
    assert statuses == [413] * AT_ONCE
    assert grown < 16 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB"
