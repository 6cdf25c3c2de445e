"""``write_now`` on a real websockets pair: it writes only when ``send`` would not have waited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from assistant.session.websocket import write_now


@asynccontextmanager
async def connected() -> AsyncIterator[tuple[ServerConnection, asyncio.Queue[bytes | str]]]:
    """A server connection to write on, and what its client received."""
    accepted: asyncio.Future[ServerConnection] = asyncio.get_running_loop().create_future()
    done = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        accepted.set_result(connection)
        await done.wait()

    received: asyncio.Queue[bytes | str] = asyncio.Queue()
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=None) as client:

            async def read() -> None:
                async for message in client:
                    await received.put(message)

            reader = asyncio.create_task(read())
            try:
                yield await accepted, received
            finally:
                done.set()
                await asyncio.wait_for(reader, 5)


async def test_frames_written_now_arrive_in_order_as_binary_between_ordinary_sends() -> None:
    async with connected() as (connection, received):
        assert write_now(connection, b"one")
        await connection.send(b"two")
        assert write_now(connection, b"three")
        assert [await received.get() for _ in range(3)] == [b"one", b"two", b"three"]


async def test_nothing_is_written_while_the_write_buffer_is_over_its_limit() -> None:
    async with connected() as (connection, received):
        connection.pause_writing()  # what asyncio calls when the buffer passes the high-water mark
        assert not write_now(connection, b"held")
        connection.resume_writing()
        assert write_now(connection, b"sent")
        assert await received.get() == b"sent"
        assert received.empty()


async def test_nothing_is_written_on_a_closed_connection() -> None:
    async with connected() as (connection, _):
        await connection.close()
        assert not write_now(connection, b"late")
