"""One websocket to Gemini, and what its failures mean.

The SDK opens the connection; its frames are read raw from the SDK's
websocket (``convert.upstream_events`` parses them: reply audio stays
base64). A read cannot be given a deadline without cancelling it, so each
connection has a reader task that reads across turns into a bounded queue
(bounded: a slow session holds back the socket instead of growing memory). The session then waits on the
queue with whatever deadline it needs, such as a goAway's ``timeLeft``.

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

from assistant.backends.gemini.convert import forward, sdk_websocket
from assistant.protocol import ClientEvent, CloseCode

logger = logging.getLogger("assistant.backends.gemini")

READ_QUEUE_SIZE = 64
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
    """One open Live connection: the SDK session and the task that reads it."""

    def __init__(self, number: int, stack: AsyncExitStack, session: AsyncSession) -> None:
        self.number = number
        self.session = session
        self._stack = stack
        self._messages: asyncio.Queue[Received] = asyncio.Queue(READ_QUEUE_SIZE)
        self._reader = asyncio.create_task(self._read(), name=f"gemini-upstream-{number}")

    @classmethod
    async def open(
        cls, client: Client, model: str, config: types.LiveConnectConfig, timeout_s: float, number: int
    ) -> UpstreamLink:
        """Connect and wait for setupComplete; errors are the SDK's or the network's."""
        stack = AsyncExitStack()
        async with asyncio.timeout(timeout_s):
            session = await stack.enter_async_context(client.aio.live.connect(model=model, config=config))
        return cls(number, stack, session)

    async def _read(self) -> None:
        websocket = sdk_websocket(self.session)
        try:
            while True:
                try:
                    frame = await websocket.recv(decode=False)
                except ConnectionClosed as closed:
                    raise closed_by_gemini(closed) from None
                await self._messages.put(frame)
        except Exception as error:  # handed to the session, which decides what it means
            await self._messages.put(error)

    async def next(self, timeout_s: float | None) -> Received | None:
        """The next message or the error that ended the connection; None when ``timeout_s`` passed."""
        if not self._messages.empty():
            return self._messages.get_nowait()  # under load the reader is ahead: no timer, no wait
        try:
            return await asyncio.wait_for(self._messages.get(), timeout_s)
        except TimeoutError:
            return None

    async def send(self, event: ClientEvent) -> bool:
        """Forward one event; False when the connection is gone (its reader reports why)."""
        try:
            await forward(self.session, event)
        except (ConnectionClosed, OSError, errors.APIError) as error:
            logger.debug("upstream %d: send failed: %s", self.number, error)
            return False
        return True

    async def close(self) -> None:
        """Stop reading and close the socket (bounded: a dead peer does not hold us up)."""
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        with contextlib.suppress(Exception, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._stack.aclose()
