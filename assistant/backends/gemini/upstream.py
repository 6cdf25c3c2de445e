"""One websocket to Gemini, and what its failures mean.

The SDK opens the connection; its frames are read raw off the SDK's
websocket (``convert.upstream_events`` parses them: reply audio stays
base64), one at a time as the session asks, with whatever deadline it
needs, such as a goAway's ``timeLeft``. A session that reads slowly holds
back the socket (websockets buffers a bounded number of frames) instead of
growing memory.

Failures are sorted once, here: a close Gemini sends because the request is
wrong (1007 invalid argument, 1008 policy: a rejected key, an unknown model)
is fatal and reaches the client with Gemini's own reason; a dropped
connection, a 1011 or a network error is worth a reconnect. Every other
failure reaches the client in the project's words: what the SDK, the TLS
stack or the network said (addresses, file paths) is the ``detail``, kept
for the server log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pydantic
from google.auth.exceptions import GoogleAuthError
from google.genai import Client, errors, types
from google.genai.live import AsyncSession
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.frames import CLOSE_CODE_EXPLANATIONS

from assistant.backends.gemini.convert import audio_frame, forward, sdk_websocket
from assistant.protocol import AudioChunk, ClientEvent, CloseCode
from assistant.session.websocket import write_now

logger = logging.getLogger("assistant.backends.gemini")

CLOSE_TIMEOUT_S = 5.0
FATAL_CLOSE_CODES = frozenset({CloseCode.INVALID_ARGUMENT, CloseCode.POLICY_VIOLATION})

Received = bytes | Exception  # one frame as Gemini sent it, or what ended the connection


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a connection failed; ``fatal`` when trying again cannot help.

    ``reason`` may reach the client; ``detail`` (a library's words) is for the log only.
    """

    reason: str
    code: int
    fatal: bool
    detail: str | None = None

    def __str__(self) -> str:
        return f"{self.reason} ({self.detail})" if self.detail else self.reason

    @property
    def rejected_request(self) -> bool:
        """Gemini refused what was asked (key, model, setup, perhaps an expired handle)."""
        return self.code in FATAL_CLOSE_CODES


def classify(error: BaseException) -> Failure:
    """Sort an exception from the SDK, websockets or the network into retry or give up."""
    if isinstance(error, errors.APIError):
        # The SDK raises APIError for every close frame; ``code`` is the close code.
        details = error.details if isinstance(error.details, str) else None
        code = error.code or CloseCode.INTERNAL_ERROR
        reason = details or error.message or f"Gemini closed the connection with {code}"
        return Failure(reason, code, code in FATAL_CLOSE_CODES)
    if isinstance(error, InvalidStatus):
        status = error.response.status_code
        transient = status in {408, 429} or status >= 500
        code = CloseCode.INTERNAL_ERROR if transient else CloseCode.POLICY_VIOLATION
        return Failure(f"Gemini refused the connection: HTTP {status}", code, not transient)
    if isinstance(error, ssl.SSLCertVerificationError):
        return Failure("Gemini's TLS certificate was not trusted", CloseCode.INTERNAL_ERROR, True, str(error))
    if isinstance(error, (ValueError, pydantic.ValidationError)):
        # The SDK checks the config before sending it (e.g. a Vertex-only field on the Developer API).
        return Failure("the setup is not one this Gemini API accepts", CloseCode.INVALID_ARGUMENT, True, str(error))
    if isinstance(error, GoogleAuthError):
        return Failure("Vertex AI credentials could not be loaded", CloseCode.INTERNAL_ERROR, True, str(error))
    if isinstance(error, ConnectionClosed):
        return Failure("the connection to Gemini closed", CloseCode.INTERNAL_ERROR, False, str(error))
    if isinstance(error, (OSError, TimeoutError, WebSocketException)):
        return Failure("cannot reach Gemini", CloseCode.INTERNAL_ERROR, False, str(error) or type(error).__name__)
    return Failure("unexpected error from Gemini's client", CloseCode.INTERNAL_ERROR, True, repr(error))


def closed_by_gemini(closed: ConnectionClosed) -> errors.APIError:
    """A close as the SDK reports it (``APIError`` with the close code and Gemini's reason), for ``classify``."""
    code = closed.rcvd.code if closed.rcvd is not None else 1006
    reason = closed.rcvd.reason if closed.rcvd is not None else CLOSE_CODE_EXPLANATIONS.get(1006, "Abnormal closure.")
    try:
        errors.APIError.raise_error(code, reason, None)
    except errors.APIError as error:
        return error
    raise AssertionError("raise_error always raises")  # pragma: no cover


class UpstreamLink:
    """One open Live connection: the SDK session, read frame by frame off its websocket."""

    def __init__(self, number: int, stack: AsyncExitStack, session: AsyncSession) -> None:
        self.number = number
        self.session = session
        self._stack = stack
        self._websocket = sdk_websocket(session)

    @classmethod
    async def open(
        cls, client: Client, model: str, config: types.LiveConnectConfig, timeout_s: float, number: int
    ) -> UpstreamLink:
        """Connect and wait for setupComplete; errors are the SDK's or the network's."""
        stack = AsyncExitStack()
        async with asyncio.timeout(timeout_s):
            session = await stack.enter_async_context(client.aio.live.connect(model=model, config=config))
        return cls(number, stack, session)

    async def next(self, timeout_s: float | None) -> Received | None:
        """The next frame or the error that ended the connection; None when ``timeout_s`` passed.

        A read that times out is cancelled, which websockets allows without
        losing a frame: the next read returns it.
        """
        try:
            if timeout_s is None:
                return await self._websocket.recv(decode=False)
            return await asyncio.wait_for(self._websocket.recv(decode=False), timeout_s)
        except TimeoutError:
            return None
        except ConnectionClosed as closed:
            return closed_by_gemini(closed)
        except Exception as error:  # handed to the session, which decides what it means
            return error

    async def send(self, event: ClientEvent) -> bool:
        """Forward one event; False when the connection is gone (its reader reports why)."""
        try:
            await forward(self.session, event)
        except (ConnectionClosed, OSError, errors.APIError) as error:
            logger.debug("upstream %d: send failed: %s", self.number, error)
            return False
        return True

    def send_now(self, chunk: AudioChunk) -> bool:
        """Write a microphone chunk if the socket takes it without waiting; False when nothing was written."""
        return write_now(self._websocket, audio_frame(chunk))

    async def close(self) -> None:
        """Close the socket (bounded: a dead peer does not hold us up)."""
        with contextlib.suppress(Exception, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._stack.aclose()
