"""The Gemini backend: one google-genai client shared by every session."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from google import genai
from google.genai import types

from assistant.backends.gemini.frames import ChangeGate, FrameLimiter, bytes_changed
from assistant.backends.gemini.options import GeminiSettings
from assistant.backends.gemini.stream import GeminiStream
from assistant.session import Backend, BackendStream, SessionRequest


def make_client(settings: GeminiSettings) -> genai.Client:
    """A client for the Developer API (key) or Vertex AI (application default credentials).

    Whatever ``settings`` leaves unset the SDK reads from its usual environment
    variables (``GEMINI_API_KEY``, ``GOOGLE_GEMINI_BASE_URL``, ``SSL_CERT_FILE``...).
    Raises ``ValueError`` with the SDK's reason when neither a key nor a project is there.
    """
    http_options = types.HttpOptions(base_url=settings.base_url, api_version=settings.resolved_api_version)
    if settings.vertex:
        return genai.Client(
            vertexai=True, project=settings.project, location=settings.location, http_options=http_options
        )
    return genai.Client(vertexai=False, api_key=settings.api_key, http_options=http_options)


class GeminiBackend(Backend):
    """Opens a ``GeminiStream`` per client connection.

    ``clock`` and ``change_gate`` decide which camera frames go upstream
    (injected by tests, and by the vision package's perceptual gate);
    ``clock`` also times a goAway's deadline, and ``sleep`` waits out the
    backoff between reconnects: tests give both from the loop's virtual time.
    """

    name = "gemini"

    def __init__(
        self,
        settings: GeminiSettings,
        *,
        client: genai.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        change_gate: ChangeGate = bytes_changed,
    ) -> None:
        self.settings = settings
        self.client = client or make_client(settings)
        self._clock = clock
        self._sleep = sleep
        self._change_gate = change_gate

    async def open(self, request: SessionRequest) -> BackendStream:
        frames = FrameLimiter(self.settings.max_fps, self._clock, self._change_gate)
        session = GeminiStream(self.client, request, self.settings, frames, clock=self._clock, sleep=self._sleep)
        await session.start()
        return session

    async def aclose(self) -> None:
        await self.client.aio.aclose()
