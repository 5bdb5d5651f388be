"""Slow and idle clients cannot hold rollbot's connections (issue 12, finding 13).

`rollbot serve` runs as its own process, as in production (its uvicorn with rollbot's
guarded h11 protocol), with a 1 s read timeout and room for 20 waiting connections.

Aspects under test:
- a connection that sends nothing is closed once the header deadline passes;
- a client trickling header bytes (slowloris) is closed at the same deadline: bytes do not
  extend it;
- more waiting connections than the cap: the longest-waiting ones (past a short grace)
  are closed at once, and a real request is still answered; a burst of complete requests
  beyond the cap, accepted before any is read, is answered in full;
- a body trickled slower than the deadline is answered 408;
- a keep-alive connection gets a fresh header deadline after each response.
"""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

from bot.sim.harness import SimWorld
from tests.e2e.serving import start

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 1.0
WAITING = 20


@pytest.fixture
async def served(tmp_path):
    settings = {
        "server": {"request_read_timeout_seconds": TIMEOUT, "max_waiting_connections": WAITING}
    }
    async with SimWorld(speed=600, workdir=tmp_path, start_bot=False, settings=settings) as world:
        served = await start(world, tmp_path / "serve.log")
        try:
            yield served.port
        finally:
            served.proc.terminate()
            served.proc.wait(timeout=30)


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    """Seconds until the server closed the connection (EOF), failing after `seconds`."""
    start = time.monotonic()
    data = await asyncio.wait_for(reader.read(), seconds)
    assert b"HTTP/1.1 2" not in data
    return time.monotonic() - start


async def test_a_silent_connection_is_closed_at_the_header_deadline(served):
    reader, writer = await asyncio.open_connection("127.0.0.1", served)
    took = await _closed_within(reader, TIMEOUT * 10)
    assert took >= TIMEOUT * 0.5
    writer.close()


async def test_trickled_header_bytes_do_not_extend_the_deadline(served):
    reader, writer = await asyncio.open_connection("127.0.0.1", served)
    start = time.monotonic()
    line = b"POST /slack/events HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    closed = asyncio.create_task(reader.read())
    for byte in line:
        if closed.done():
            break
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.05)
    await asyncio.wait_for(closed, TIMEOUT * 10)
    assert time.monotonic() - start < TIMEOUT * 5  # 200 bytes at 20/s would take 10 s
    writer.close()


async def test_waiting_connections_beyond_the_cap_evict_the_oldest(served):
    start = time.monotonic()
    idle = [await asyncio.open_connection("127.0.0.1", served) for _ in range(WAITING)]
    # Time must pass here, not an event: the oldest become evictable after the grace
    # (a fifth of the header deadline), and only then do newcomers push them out.
    await asyncio.sleep(TIMEOUT * 0.3)
    newcomers = [await asyncio.open_connection("127.0.0.1", served) for _ in range(10)]
    for reader, _ in idle[:10]:
        await asyncio.wait_for(reader.read(), TIMEOUT)
    # Closed by eviction, well before their own header deadline would have closed them.
    assert time.monotonic() - start < TIMEOUT * 0.9
    async with httpx.AsyncClient(timeout=5) as client:
        assert (await client.get(f"http://127.0.0.1:{served}/healthz")).status_code == 200
    for _, writer in idle + newcomers:
        writer.close()


async def test_a_burst_beyond_the_cap_of_complete_requests_is_answered_in_full(served):
    """uvicorn accepts a whole burst of connections before reading any: requests already
    complete in their sockets must not be evicted as if idle (the flood bench lost valid
    requests that way)."""

    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    def complete() -> socket.socket:
        # Connected and the whole request written at once, in one blocking step: a burst
        # of complete requests, not clients that connect and write later (which the cap
        # may evict as idle, by design, once past its grace).
        sock = socket.create_connection(("127.0.0.1", served))
        sock.sendall(request)
        return sock

    burst = await asyncio.to_thread(lambda: [complete() for _ in range(WAITING * 5)])

    async def one(sock: socket.socket) -> bytes:
        reader, writer = await asyncio.open_connection(sock=sock)
        status = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        return status

    statuses = await asyncio.gather(*(one(sock) for sock in burst))
    assert [s.split()[1:2] for s in statuses] == [[b"200"]] * (WAITING * 5)


async def _trickled_status(port: int, head: bytes, piece: bytes) -> bytes:
    """Send `head`, then `piece` every 50 ms until the server answers; its status code."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    answer = asyncio.create_task(reader.readline())
    for _ in range(200):
        if answer.done():
            break
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.05)
    status = await asyncio.wait_for(answer, TIMEOUT * 10)
    writer.close()
    return status.split()[1]


async def test_a_trickled_body_is_answered_408(served):
    head = (
        b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    assert await _trickled_status(served, head, b" ") == b"408"


async def test_keep_alive_gets_a_fresh_deadline_after_each_response(served):
    reader, writer = await asyncio.open_connection("127.0.0.1", served)
    for _ in range(3):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert (await asyncio.wait_for(reader.readline(), 5)).split()[1] == b"200"
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        await reader.readexactly(len(b'{"status":"ok"}'))
        await asyncio.sleep(TIMEOUT * 0.3)
    await _closed_within(reader, TIMEOUT * 10)
    writer.close()


async def test_a_body_left_unfinished_after_an_early_answer_is_closed_at_the_deadline(served):
    """A 401 goes out before the body is read. A client that then sends one byte (which
    cancels uvicorn's keep-alive timer) and goes silent must still be closed at the header
    deadline: a review found such sockets held for ever, enough of them to fill
    max_connections."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served)
    writer.write(
        b"POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10\r\n\r\n"
    )
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 5)).split()[1] == b"401"
    start = time.monotonic()
    writer.write(b"{")
    await writer.drain()
    rest = await asyncio.wait_for(reader.read(), TIMEOUT * 10)  # EOF: the server closed it
    assert b"HTTP/1.1" not in rest.split(b"\r\n\r\n", 1)[-1]  # no second response
    assert time.monotonic() - start < TIMEOUT * 5
    writer.close()


async def test_a_trickled_runbook_form_is_408_not_a_500(served):
    """The runbook pages catch their own errors to show a page; the guard's deadline must
    not become one of them."""
    head = (
        b"POST /runbooks/payment-router/actions HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    assert await _trickled_status(served, head, b"1\r\na\r\n") == b"408"
