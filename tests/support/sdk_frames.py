"""The frames the real google-genai SDK writes, captured at test time.

Typing an SDK frame by hand in a test checks the server against what the
author believed the SDK sends; a new SDK release that changes the shape (as
3.6 did by wrapping ``contextUpdate.tools`` in ``{"tools": [...]}``) slips
through. Here the SDK's own ``AsyncSession`` builds every frame and writes it
to a socket stand-in that keeps the text, so the protocol tests parse exactly
what the installed SDK would put on the wire.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from google import genai
from google.genai import live


class RecordingSocket:
    """Takes the place of the SDK's websocket: keeps each frame it is sent."""

    def __init__(self) -> None:
        self.frames: list[str] = []

    async def send(self, data: str) -> None:
        self.frames.append(data)


async def sdk_frames(send: Callable[[live.AsyncSession], Awaitable[None]], vertexai: bool = False) -> list[str]:
    """The raw frames ``send`` makes the SDK write (Gemini API or Vertex AI conversion)."""
    client = (
        genai.Client(vertexai=True, project="test-project", location="us-central1", api_key=None)
        if vertexai
        else genai.Client(api_key="test-key")
    )
    socket = RecordingSocket()
    session = live.AsyncSession(api_client=client._api_client, websocket=socket)  # type: ignore[arg-type]
    await send(session)
    return socket.frames


async def sdk_frame(send: Callable[[live.AsyncSession], Awaitable[None]], vertexai: bool = False) -> dict[str, Any]:
    """The one frame ``send`` makes the SDK write, decoded."""
    [frame] = await sdk_frames(send, vertexai)
    decoded: dict[str, Any] = json.loads(frame)
    return decoded
