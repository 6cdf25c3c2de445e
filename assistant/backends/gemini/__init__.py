"""Gemini Live through the google-genai SDK (``assistant serve --backend gemini``).

The server owns the Gemini session and the key; clients speak the same Live
protocol to this server and never see either. The package's parts:
``options`` (settings, command line; imports nothing heavy), ``convert``
(our models and the SDK's types), ``frames`` (the camera frame cap),
``replay`` (input to send again after a reconnect), ``quirks`` (how each
model family differs), ``upstream`` (one
connection and its failures) and ``stream`` (a conversation across
connections).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from assistant.backends.gemini.options import GeminiSettings, settings_from_args

if TYPE_CHECKING:
    from assistant.backends.gemini.backend import GeminiBackend


def create_backend(settings: GeminiSettings) -> GeminiBackend:
    """The backend for ``settings``; imports the SDK only now."""
    from assistant.backends.gemini.backend import GeminiBackend

    return GeminiBackend(settings)



__all__ = ["GeminiSettings", "create_backend", "settings_from_args"]
