"""The yardstick of ``assistant bench relay``: a naive Live proxy, as the Pastra guide writes one.

Each client websocket gets its own websocket to the upstream; every message
is parsed with ``json.loads`` and written again with ``json.dumps`` on its
way through, in both directions, and nothing else happens: no validation,
no queues, no resumption, no tool routing, no limits. It is what a
developer would write in an afternoon, so the relay's cost is reported
against it, measured in the same run on the same core.

Run as its own process (``python -m assistant.bench.naive_proxy``), as the
server is; it prints ``Live endpoint ws://...`` to stderr when it listens,
the line ``assistant serve`` prints. It runs on asyncio's own loop, as the
guide's does; ``--loop uvloop`` runs the same code on uvloop, so the bench
can say how much of the relay's lead is the loop and how much its design.
"""

from __future__ import annotations

import asyncio
import json
import ssl

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from assistant.bench.yardstick import announce, command_line
from assistant.server.app import DEFAULT_LIVE_PATH


class NaiveProxy:
    """One upstream websocket per client; ``json.loads`` + ``json.dumps`` per message, both ways."""

    def __init__(self, upstream_url: str, api_key: str, certificate: str) -> None:
        self.upstream_url = upstream_url
        self.api_key = api_key
        self.ssl = ssl.create_default_context(cafile=certificate)

    async def handle(self, client: ServerConnection) -> None:
        async with connect(
            self.upstream_url,
            additional_headers={"x-goog-api-key": self.api_key},
            ssl=self.ssl,
            max_size=None,
            compression=None,
        ) as upstream:
            pumps = [
                asyncio.create_task(_pump(client, upstream)),
                asyncio.create_task(_pump(upstream, client)),
            ]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)


async def _pump(source: ServerConnection | ClientConnection, sink: ServerConnection | ClientConnection) -> None:
    try:
        async for raw in source:
            await sink.send(json.dumps(json.loads(raw)))
    except ConnectionClosed:
        pass


async def main(upstream: str, api_key: str, certificate: str) -> None:
    proxy = NaiveProxy(upstream.replace("https://", "wss://", 1) + DEFAULT_LIVE_PATH, api_key, certificate)
    async with serve(proxy.handle, "127.0.0.1", 0, max_size=None, compression=None) as server:
        announce(server.sockets[0].getsockname()[1])
        await server.serve_forever()


if __name__ == "__main__":
    command_line(__doc__.split("\n\n")[0], main, "asyncio", "the guide's")
