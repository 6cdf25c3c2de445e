"""A Live protocol client over any message transport.

The desktop app talks to its session exactly as a remote client would:
JSON frames through ``assistant.session.pipe`` when the session runs
in-process, or through a websocket with ``--connect``. ``LiveClient`` builds
the client messages with the project's protocol models and decodes what
comes back, so both paths exercise the same wire format.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from assistant.errors import AssistantError
from assistant.protocol import (
    Blob,
    ClientMessage,
    FunctionResponse,
    ServerMessage,
    Setup,
    decode_server_message,
    encode_message,
)
from assistant.protocol.models import RealtimeInput, ToolResponse
from assistant.session.pipe import PipeClosed, PipeEnd

SETUP_TIMEOUT_S = 60.0


class LiveClosed(AssistantError):
    """The session ended; ``code`` and ``reason`` are what the server said (None: the connection dropped)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code}: {reason}" if code is not None else reason)
        self.code = code
        self.reason = reason


class BackendUnreachable(AssistantError):
    """``--connect`` could not reach a Live server; the message says what to check."""


class Connection(Protocol):
    """What ``LiveClient`` needs from a transport: frames in and out, and a close."""

    async def recv(self) -> str | bytes: ...

    async def send(self, data: str | bytes) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class PipeConnection:
    """The client end of an in-process pipe, with the pipe's close turned into ``LiveClosed``."""

    def __init__(self, end: PipeEnd) -> None:
        self._end = end

    async def recv(self) -> str | bytes:
        try:
            return await self._end.recv()
        except PipeClosed as exc:
            raise LiveClosed(exc.code, exc.reason) from None

    async def send(self, data: str | bytes) -> None:
        try:
            await self._end.send(data)
        except PipeClosed as exc:
            raise LiveClosed(exc.code, exc.reason) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._end.close(code, reason)


class WebSocketConnection:
    """A websocket to a Live server, with its close turned into ``LiveClosed``."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket

    @staticmethod
    def _closed(exc: ConnectionClosed) -> LiveClosed:
        received = exc.rcvd
        if received is None:
            return LiveClosed(None, "the connection to the server dropped")
        return LiveClosed(received.code, received.reason)

    async def recv(self) -> str | bytes:
        try:
            return await self._socket.recv()
        except ConnectionClosed as exc:
            raise self._closed(exc) from None

    async def send(self, data: str | bytes) -> None:
        try:
            await self._socket.send(data)
        except ConnectionClosed as exc:
            raise self._closed(exc) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._socket.close(code, reason)


async def connect_websocket(url: str, api_key: str | None = None, timeout_s: float = 10.0) -> WebSocketConnection:
    """Open a websocket to a Live server; ``BackendUnreachable`` says why it could not."""
    headers = {"x-goog-api-key": api_key} if api_key else None
    hint = "is `assistant serve` running there? check the address given to --connect"
    try:
        socket = await asyncio.wait_for(
            connect(url, additional_headers=headers, max_size=None, compression=None, open_timeout=None), timeout_s
        )
    except InvalidURI:
        raise BackendUnreachable(f"{url} is not a websocket address (ws:// or wss://)") from None
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise BackendUnreachable(f"{url} answered HTTP {status} instead of a Live websocket; {hint}") from None
    except TimeoutError:
        raise BackendUnreachable(f"no answer from {url} within {timeout_s:.0f} s; {hint}") from None
    except (OSError, InvalidHandshake) as exc:
        raise BackendUnreachable(f"cannot reach {url} ({exc}); {hint}") from None
    return WebSocketConnection(socket)


class LiveClient:
    """Sends client messages and yields server messages over one connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.session_id: str | None = None

    async def _send(self, message: ClientMessage) -> None:
        await self.connection.send(encode_message(message))

    async def start(self, setup: Setup, timeout_s: float = SETUP_TIMEOUT_S) -> str | None:
        """Send the setup and wait for the server's ``setupComplete``."""
        await self._send(ClientMessage(setup=setup))
        async with asyncio.timeout(timeout_s):
            while True:
                message = decode_server_message(await self.connection.recv())
                if message.setup_complete is not None:
                    self.session_id = message.setup_complete.session_id
                    return self.session_id

    async def send_audio(self, pcm: bytes, rate: int = 16_000) -> None:
        blob = Blob(data=pcm, mime_type=f"audio/pcm;rate={rate}")
        await self._send(ClientMessage(realtime_input=RealtimeInput(audio=blob)))

    async def send_audio_stream_end(self) -> None:
        """The microphone stopped sending (a wake word session fell asleep): the server ends any open turn."""
        await self._send(ClientMessage(realtime_input=RealtimeInput(audio_stream_end=True)))

    async def send_text(self, text: str) -> None:
        await self._send(ClientMessage(realtime_input=RealtimeInput(text=text)))

    async def send_image(self, jpeg: bytes, mime_type: str = "image/jpeg") -> None:
        await self._send(ClientMessage(realtime_input=RealtimeInput(video=Blob(data=jpeg, mime_type=mime_type))))

    async def send_tool_responses(self, responses: list[FunctionResponse]) -> None:
        await self._send(ClientMessage(tool_response=ToolResponse(function_responses=responses)))

    async def messages(self) -> AsyncIterator[ServerMessage]:
        """Server messages until the session ends (then ``LiveClosed``)."""
        while True:
            yield decode_server_message(await self.connection.recv())

    async def close(self) -> None:
        await self.connection.close(1000, "client closed")
