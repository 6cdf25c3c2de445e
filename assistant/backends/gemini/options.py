"""Settings of the Gemini backend and its command-line options.

Imported by ``assistant serve --help`` whichever backend runs, so nothing
here imports the google-genai SDK. Every setting has a default that works
with nothing but a key in the environment; the upstream address is left to
the SDK's own settings (``GOOGLE_GEMINI_BASE_URL``, ``SSL_CERT_FILE``) unless
``--gemini-base-url`` names one.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

# The Live models used when neither the client nor --gemini-model names one, as each API names them:
# gemini-3.8-live, generally available on both since 2026-09 (see ``quirks`` for how it differs).
DEFAULT_MODEL = "gemini-3.8-live"
DEFAULT_VERTEX_MODEL = "gemini-3.8-live"
DEFAULT_VOICE = "Puck"
# The Developer API serves the Live API of native-audio models on v1beta; Vertex AI's is GA on v1.
DEFAULT_API_VERSION = "v1beta"
DEFAULT_VERTEX_API_VERSION = "v1"
DEFAULT_VERTEX_LOCATION = "us-central1"
DEFAULT_MAX_FPS = 1.0
DEFAULT_RECONNECT_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class GeminiSettings:
    """What the server decides for every Gemini session, whatever the client asked.

    ``model`` set means every session uses it; unset means the client's
    model (``default_model`` when the client names none). ``api_key`` unset
    lets the SDK read ``GOOGLE_API_KEY`` / ``GEMINI_API_KEY``.
    """

    api_key: str | None = None
    vertex: bool = False
    project: str | None = None
    location: str | None = None
    base_url: str | None = None
    api_version: str | None = None
    model: str | None = None
    voice: str = DEFAULT_VOICE
    max_fps: float = DEFAULT_MAX_FPS
    context_compression: bool = True
    reconnect_attempts: int = DEFAULT_RECONNECT_ATTEMPTS
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 4.0
    connect_timeout_s: float = 15.0
    # How long a turnComplete waits for the resumption handle Gemini sends right after it, so
    # the handle the session saves for that turn already contains the turn.
    handle_wait_s: float = 1.0
    # Rotate to a new connection this long before a goAway's timeLeft runs out, even mid-turn.
    go_away_margin_s: float = 5.0
    # Most recent user audio kept for replay after a reconnect.
    replay_audio_s: float = 30.0

    @property
    def default_model(self) -> str:
        return DEFAULT_VERTEX_MODEL if self.vertex else DEFAULT_MODEL

    @property
    def resolved_api_version(self) -> str:
        if self.api_version:
            return self.api_version
        return DEFAULT_VERTEX_API_VERSION if self.vertex else DEFAULT_API_VERSION


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes"}


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The ``--gemini-*`` options of ``assistant serve`` (defaults come from the environment)."""
    env = os.environ
    parser.add_argument(
        "--gemini-model",
        help=f"model for every session (default: the client's; {DEFAULT_MODEL} when it names none)",
    )
    parser.add_argument(
        "--gemini-voice",
        default=DEFAULT_VOICE,
        help="voice when the client names none (default %(default)s)",
    )
    parser.add_argument(
        "--gemini-base-url",
        help="Gemini's address, e.g. a proxy (default: $GOOGLE_GEMINI_BASE_URL, else Google's)",
    )
    parser.add_argument(
        "--gemini-api-version",
        default=env.get("GOOGLE_GENAI_API_VERSION"),
        help=f"Live API version (default {DEFAULT_API_VERSION}, or {DEFAULT_VERTEX_API_VERSION} on Vertex AI)",
    )
    parser.add_argument(
        "--gemini-vertex",
        action="store_true",
        default=_truthy(env.get("GOOGLE_GENAI_USE_VERTEXAI")),
        help="use Vertex AI with application default credentials (default: $GOOGLE_GENAI_USE_VERTEXAI)",
    )
    parser.add_argument(
        "--gemini-project",
        default=env.get("GOOGLE_CLOUD_PROJECT"),
        help="Vertex AI project (default $GOOGLE_CLOUD_PROJECT)",
    )
    parser.add_argument(
        "--gemini-location",
        default=env.get("GOOGLE_CLOUD_LOCATION", DEFAULT_VERTEX_LOCATION),
        help="Vertex AI region (default $GOOGLE_CLOUD_LOCATION or %(default)s; Live models are not in 'global')",
    )
    parser.add_argument(
        "--gemini-max-fps",
        type=float,
        default=DEFAULT_MAX_FPS,
        help="most camera or screen frames per second sent to Gemini (default %(default)s)",
    )
    parser.add_argument(
        "--gemini-no-context-compression",
        dest="gemini_context_compression",
        action="store_false",
        help="do not turn on sliding-window context compression when the client did not configure it",
    )
    parser.add_argument(
        "--gemini-reconnect-attempts",
        type=int,
        default=DEFAULT_RECONNECT_ATTEMPTS,
        help="reconnects tried after Gemini drops a connection before the session closes (default %(default)s)",
    )


def settings_from_args(args: argparse.Namespace) -> GeminiSettings:
    """Settings from parsed ``assistant serve`` options; the key itself is read by the SDK."""
    if args.gemini_max_fps <= 0:
        raise ValueError("--gemini-max-fps must be positive")
    if args.gemini_reconnect_attempts < 0:
        raise ValueError("--gemini-reconnect-attempts must be zero or more")
    return GeminiSettings(
        vertex=args.gemini_vertex,
        project=args.gemini_project if args.gemini_vertex else None,
        location=args.gemini_location if args.gemini_vertex else None,
        base_url=args.gemini_base_url,
        api_version=args.gemini_api_version,
        model=args.gemini_model,
        voice=args.gemini_voice,
        max_fps=args.gemini_max_fps,
        context_compression=args.gemini_context_compression,
        reconnect_attempts=args.gemini_reconnect_attempts,
    )
