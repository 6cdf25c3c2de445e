"""The floor of ``assistant bench relay``: bytes through both ways, no message read.

Each client connection gets its own TLS connection to the upstream, and the
bytes go across as they arrive: no websocket frame is parsed, no JSON, no
copy kept. Only the opening HTTP request is read, to add the upstream's key
header (a relay must add that much). What this costs per session-second is
the kernel's sockets, TLS and the event loop's callbacks, which every relay
built this way pays before it reads a single message; no relay that reads
its messages can cost less. The bench prints it beside the others, so the
table says how many times cheaper than the naive proxy any such relay could
be on that machine.

Run as its own process (``python -m assistant.bench.byte_pipe``), as the naive
proxy is, with the same options; it prints ``Live endpoint ws://...`` to
stderr when it listens. It runs on uvloop by default, as the server does.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import cast
from urllib.parse import urlsplit

from assistant.bench.yardstick import announce, command_line

HEAD_END = b"\r\n\r\n"
MAX_HEAD_BYTES = 64 * 1024  # an opening request longer than this is not a websocket handshake


class Leg(asyncio.Protocol):
    """One socket of a pipe: what it reads is written to the other leg; flow control crosses over."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.other: Leg | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        assert self.other is not None and self.other.transport is not None
        self.other.transport.write(data)

    def pause_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.close()


class ClientLeg(Leg):
    """The client's socket: reads the opening request, adds the key, then opens the upstream leg."""

    def __init__(self, upstream: tuple[str, int], api_key: str, context: ssl.SSLContext) -> None:
        super().__init__()
        self.upstream = upstream
        self.key_header = f"x-goog-api-key: {api_key}\r\n".encode()
        self.context = context
        self.head = bytearray()

    def data_received(self, data: bytes) -> None:
        if self.other is not None:
            super().data_received(data)
            return
        self.head += data
        end = self.head.find(HEAD_END)
        if end < 0:
            if len(self.head) > MAX_HEAD_BYTES:
                assert self.transport is not None
                self.transport.close()
            return
        request = bytes(self.head[: end + 2]) + self.key_header + bytes(self.head[end + 2 :])
        assert self.transport is not None
        self.transport.pause_reading()  # until the upstream leg is there to take what follows
        asyncio.get_running_loop().create_task(self._open_upstream(request))

    async def _open_upstream(self, request: bytes) -> None:
        assert self.transport is not None
        host, port = self.upstream
        upstream = Leg()
        upstream.other = self
        try:
            await asyncio.get_running_loop().create_connection(
                lambda: upstream, host, port, ssl=self.context, server_hostname=host
            )
        except OSError:
            self.transport.close()
            return
        assert upstream.transport is not None
        self.other = upstream
        upstream.transport.write(request)
        self.transport.resume_reading()


async def listen(upstream: str, api_key: str, certificate: str) -> asyncio.Server:
    """Listen on a free loopback port; each connection is piped to ``upstream`` (https://HOST:PORT)."""
    address = urlsplit(upstream)
    if address.hostname is None or address.port is None:
        raise ValueError(f"the upstream needs a host and a port, not {upstream}")
    upstream_at = (address.hostname, address.port)
    context = ssl.create_default_context(cafile=certificate)
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: ClientLeg(upstream_at, api_key, context), "127.0.0.1", 0)


async def main(upstream: str, api_key: str, certificate: str) -> None:
    async with await listen(upstream, api_key, certificate) as server:
        announce(server.sockets[0].getsockname()[1])
        await server.serve_forever()


if __name__ == "__main__":
    command_line(__doc__.split("\n\n")[0], main, "uvloop", "the server's")
