"""The client end of an in-process pipe, speaking the Live protocol's JSON."""

from __future__ import annotations

import asyncio
import json

import pytest

from assistant.protocol import ServerMessage, decode_server_message
from assistant.session.pipe import PipeClosed, PipeEnd


class PipeClient:
    """Sends JSON payloads and reads decoded server messages through a ``PipeEnd``."""

    def __init__(self, end: PipeEnd) -> None:
        self.end = end

    async def send(self, payload: object) -> None:
        await self.end.send(json.dumps(payload))

    async def recv(self, timeout: float = 10.0) -> ServerMessage:
        return decode_server_message(await asyncio.wait_for(self.end.recv(), timeout))

    async def closed(self, timeout: float = 5.0) -> PipeClosed:
        """Read until the session closes the pipe; the close code and reason."""
        with pytest.raises(PipeClosed) as caught:
            while True:
                await asyncio.wait_for(self.end.recv(), timeout)
        return caught.value
