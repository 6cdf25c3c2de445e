"""A stand-in for Gemini Live that speaks its wire protocol, for tests only.

Gemini cannot be reached from here, so the Gemini backend is tested against
this server instead. It is faithful where the backend could notice:

- a real websockets server over TLS (the test's self-signed certificate), on
  the real path ``/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent``
  (any other path is a 404), reached by the SDK only through its own
  settings (a base URL and ``SSL_CERT_FILE``);
- the key must come in the ``x-goog-api-key`` header, as the SDK sends it;
- the first client message must be ``setup``, answered by ``{"setupComplete": {}}``
  before anything else; a bad key, an unknown model or an unknown resumption
  handle is answered by a close with a code and Gemini-style reason instead;
- every server message is one binary frame of lowerCamelCase JSON with
  standard base64, as Gemini sends them (written by ``encode_message``); client
  frames are parsed leniently, as Gemini does (either casing, either base64).

It does not pretend to be a model: each connection runs a script (one per
connection, in order) that waits for what the test expects and sends what
the test wants, and everything each connection received is recorded for
the test's assertions.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from assistant.protocol import (
    ClientMessage,
    ServerMessage,
    Setup,
    SetupComplete,
    encode_message,
    fit_close_reason,
    parse_client_message,
)
from assistant.protocol.models import GoAway, SessionResumptionUpdate
from tests.conftest import Certificate

LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
DEFAULT_KEY = "gemini-test-key"
# The reasons Gemini gives, as developers report them.
BAD_KEY_REASON = "API key not valid. Please pass a valid API key."
INTERNAL_REASON = "Internal error encountered."
UNKNOWN_HANDLE_REASON = "Session resumption handle is invalid or has expired."
REPLY = b"\x10\x20" * 4800  # what ``reply`` speaks: 0.2 s of 24 kHz PCM


def unknown_model_reason(model: str) -> str:
    return (
        f"{model} is not found for API version v1beta, or is not supported for bidiGenerateContent. "
        "Call ListModels to see the list of available models and their supported methods."
    )


Script = Callable[["FakeConnection"], Awaitable[None]]
THINKING_REFUSED_REASON = "Invalid argument: thinking_config is not supported by this model."
HISTORY_REFUSED_REASON = (
    "Invalid argument: conversation history in client_content requires "
    "history_config.initial_history_in_client_content."
)


@dataclass(frozen=True)
class ModelRules:
    """What the model the fake stands for refuses, as its documentation says (set per test)."""

    refuses_thinking: bool = False  # close 1007 on a setup with generationConfig.thinkingConfig
    needs_history_config: bool = False  # close 1007 on model turns in clientContent without historyConfig


class FakeConnection:
    """One client connection: what it sent, and the script's means of answering."""

    def __init__(self, fake: FakeGemini, number: int, websocket: ServerConnection) -> None:
        self.fake = fake
        self.number = number
        self.websocket = websocket
        request = websocket.request
        assert request is not None
        self.path = request.path
        self.api_key = request.headers.get("x-goog-api-key")
        self.setup_json: dict[str, Any] = {}
        self.setup: Setup | None = None
        self.received: list[ClientMessage] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self._inbox: asyncio.Queue[ClientMessage | None] = asyncio.Queue()

    @property
    def presented_handle(self) -> str | None:
        assert self.setup is not None
        return self.setup.session_resumption.handle if self.setup.session_resumption else None

    # -- what the client sent -------------------------------------------------

    async def next(self, kind: str | None = None, timeout: float = 5.0) -> ClientMessage:
        """The next message (of ``kind``, e.g. "toolResponse", when given; others are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self._inbox.get()
                if message is None:
                    raise AssertionError(f"connection {self.number} closed while waiting for {kind or 'a message'}")
                if kind is None or message.kind == kind:
                    return message

    async def text(self, timeout: float = 5.0) -> str:
        """The next typed text (``realtimeInput.text``), skipping audio and the rest."""
        while True:
            message = await self.next("realtimeInput", timeout)
            assert message.realtime_input is not None
            if message.realtime_input.text is not None:
                return message.realtime_input.text

    async def audio(self, seconds: float, timeout: float = 5.0) -> bytes:
        """At least ``seconds`` of 16 kHz input audio, as it arrived."""
        pcm = b""
        while len(pcm) < seconds * 32_000:
            message = await self.next("realtimeInput", timeout)
            assert message.realtime_input is not None
            blob = message.realtime_input.audio
            if blob is not None:
                assert blob.mime_type == "audio/pcm;rate=16000", blob.mime_type
                pcm += blob.data
        return pcm

    def audio_received(self) -> bytes:
        return b"".join(m.realtime_input.audio.data for m in self._realtime() if m.realtime_input.audio)  # type: ignore[union-attr]

    def frames_received(self) -> list[bytes]:
        return [m.realtime_input.video.data for m in self._realtime() if m.realtime_input.video]  # type: ignore[union-attr]

    def texts_received(self) -> list[str]:
        return [m.realtime_input.text for m in self._realtime() if m.realtime_input.text is not None]  # type: ignore[union-attr]

    def _realtime(self) -> list[ClientMessage]:
        return [m for m in self.received if m.realtime_input is not None]

    # -- answering --------------------------------------------------------------

    async def send(self, *messages: ServerMessage) -> None:
        """Each message as one binary frame of camelCase JSON."""
        for message in messages:
            await self.websocket.send(encode_message(message))

    async def reply(self, text: str, *, handle: bool = True) -> str | None:
        """A short spoken answer as Gemini gives it: transcript, audio, generationComplete,
        turnComplete, then (``handle``) a resumption handle, which is returned."""
        await self.send(
            ServerMessage.output_transcript(text),
            ServerMessage.model_audio(REPLY),
            ServerMessage.generation_done(),
            ServerMessage.turn_done(),
        )
        return await self.send_handle() if handle else None

    async def exchange(self, heard: str, said: str, *, handle: bool = True) -> str | None:
        """A whole turn: wait for the user's typed words ``heard``, then ``reply`` with ``said``."""
        assert await self.text() == heard
        return await self.reply(said, handle=handle)

    async def send_handle(self, resumable: bool = True) -> str:
        """Issue a resumption handle, as Gemini does after a turn."""
        handle = f"gemini-handle-{secrets.token_hex(4)}"
        if resumable:
            self.fake.handles.add(handle)
        await self.send(
            ServerMessage(session_resumption_update=SessionResumptionUpdate(new_handle=handle, resumable=resumable))
        )
        return handle

    async def go_away(self, time_left: str) -> None:
        await self.send(ServerMessage(go_away=GoAway(time_left=time_left)))

    async def close(self, code: int, reason: str) -> None:
        """Close as Gemini does; a long reason is cut to what a close frame holds."""
        self.close_code, self.close_reason = code, fit_close_reason(reason)
        await self.websocket.close(code, self.close_reason)

    async def wait_closed(self) -> None:
        await self.websocket.wait_closed()

    # -- run by the server ------------------------------------------------------

    def _refuses(self, message: ClientMessage) -> bool:
        """Model turns in clientContent, which some models take only with historyConfig set."""
        if not self.fake.rules.needs_history_config or message.client_content is None:
            return False
        history = (self.setup.history_config if self.setup is not None else None) or {}
        allowed = history.get("initialHistoryInClientContent") or history.get("initial_history_in_client_content")
        return any(turn.role == "model" for turn in message.client_content.turns or []) and not allowed

    async def _read(self) -> None:
        try:
            async for frame in self.websocket:
                message = parse_client_message(frame)
                if self._refuses(message):
                    await self.close(1007, HISTORY_REFUSED_REASON)
                    return
                self.received.append(message)
                await self._inbox.put(message)
        except ConnectionClosed:
            pass
        finally:
            await self._inbox.put(None)


class FakeGemini:
    """The server; ``scripts[i]`` answers the i-th connection (async context manager)."""

    def __init__(
        self,
        certificate: Certificate,
        scripts: Sequence[Script],
        *,
        api_key: str = DEFAULT_KEY,
        models: set[str] | None = None,
        rules: ModelRules | None = None,
    ) -> None:
        self.certificate = certificate
        self.rules = rules or ModelRules()
        self.scripts = list(scripts)
        self.api_key = api_key
        self.models = models
        self.handles: set[str] = set()
        self.connections: list[FakeConnection] = []
        self.errors: list[BaseException] = []
        self._server: Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeGemini:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate.cert, self.certificate.key)
        self._server = await serve(
            self._handle, "127.0.0.1", 0, ssl=context, process_request=self._process_request, compression=None
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def check(self) -> None:
        """Raise the first failure of a script, so a test fails where the fake saw the problem."""
        if self.errors:
            raise self.errors[0]

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.partition("?")[0] != LIVE_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        return None

    async def _handle(self, websocket: ServerConnection) -> None:
        connection = FakeConnection(self, len(self.connections), websocket)
        self.connections.append(connection)
        try:
            await self._serve(connection)
        except ConnectionClosed:
            pass
        except BaseException as error:
            self.errors.append(error)
            if websocket.close_code is None:
                await connection.close(1011, f"fake Gemini script failed: {error!r}")

    async def _serve(self, connection: FakeConnection) -> None:
        first = await asyncio.wait_for(connection.websocket.recv(), 5.0)
        connection.setup_json = json.loads(first)
        message = parse_client_message(first)
        if message.setup is None:
            await connection.close(1007, "Request contains an invalid argument.")
            return
        connection.setup = message.setup
        if connection.api_key != self.api_key:
            await connection.close(1007, BAD_KEY_REASON)
            return
        if self.models is not None and message.setup.model not in self.models:
            await connection.close(1008, unknown_model_reason(message.setup.model))
            return
        generation = message.setup.generation_config
        if self.rules.refuses_thinking and generation is not None and generation.thinking_config is not None:
            await connection.close(1007, THINKING_REFUSED_REASON)
            return
        if connection.presented_handle is not None and connection.presented_handle not in self.handles:
            await connection.close(1007, UNKNOWN_HANDLE_REASON)
            return
        if connection.number >= len(self.scripts):
            raise AssertionError(f"unexpected connection {connection.number}: only {len(self.scripts)} scripted")
        await connection.send(ServerMessage(setup_complete=SetupComplete()))
        reader = asyncio.create_task(connection._read())
        try:
            await self.scripts[connection.number](connection)
            await connection.wait_closed()
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
