"""Normalised client events: what a backend receives.

A wire message can say the same thing several ways (``audio`` or the legacy
``mediaChunks``, a rate in the mime type or none, Pastra's empty "continue"
turn after every chunk). ``client_events`` turns each into one small, explicit
event so a backend handles one form of each thing, and checks what it must
(mime types, sample rates, whole samples, image signatures) with a reason that
names the field.
"""

from __future__ import annotations

import re
from base64 import b64encode
from dataclasses import dataclass, field
from functools import lru_cache

from assistant.protocol.errors import ProtocolError
from assistant.protocol.models import (
    Blob,
    ClientContent,
    ClientMessage,
    Content,
    ContextUpdate,
    FunctionResponse,
    RealtimeInput,
)
from assistant.protocol.server_events import base64_size, decode_base64

INPUT_AUDIO_RATE = 16_000
MIN_AUDIO_RATE = 8_000
MAX_AUDIO_RATE = 96_000
AUDIO_MIME_HINT = f"audio/pcm;rate={INPUT_AUDIO_RATE}"
MAX_CACHED_MIME = 64  # longer mime types (a hostile client's) are parsed every time, never kept

_AUDIO_MIME = re.compile(r"^audio/pcm\s*(?:;\s*rate\s*=\s*(\d+)\s*)?$", re.IGNORECASE)
_IMAGE_SIGNATURES = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/webp": (b"RIFF",),
}


class AudioChunk:
    """16-bit little-endian mono PCM at ``sample_rate``, held as bytes, as base64 text, or both.

    A chunk parsed from a client's frame keeps the base64 text it came in
    (``AudioChunk(base64=text)``): a backend that forwards it as base64 (the
    Gemini relay) never decodes it, and ``pcm`` decodes it on first use for
    those who need samples (resampling, VAD, the local backend). Immutable.
    """

    __slots__ = ("_base64", "_pcm", "nbytes", "sample_rate")
    _pcm: bytes | None
    _base64: str | None
    nbytes: int  # the PCM's length in bytes, known without decoding
    sample_rate: int

    def __init__(self, pcm: bytes | None = None, sample_rate: int = INPUT_AUDIO_RATE, *, base64: str | None = None):
        if pcm is None and base64 is None:
            raise TypeError("AudioChunk needs pcm or base64")
        object.__setattr__(self, "_pcm", pcm)
        object.__setattr__(self, "_base64", base64)
        object.__setattr__(self, "nbytes", len(pcm) if pcm is not None else base64_size(base64 or ""))
        object.__setattr__(self, "sample_rate", sample_rate)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("AudioChunk is immutable")

    @property
    def pcm(self) -> bytes:
        if self._pcm is None:
            assert self._base64 is not None
            object.__setattr__(self, "_pcm", decode_base64(self._base64))
        assert self._pcm is not None
        return self._pcm

    @property
    def base64(self) -> str:
        """The audio as base64 text (either alphabet, as the client sent it; standard when encoded here)."""
        if self._base64 is None:
            assert self._pcm is not None
            object.__setattr__(self, "_base64", b64encode(self._pcm).decode("ascii"))
        assert self._base64 is not None
        return self._base64

    @property
    def duration_s(self) -> float:
        return self.nbytes / 2 / self.sample_rate

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AudioChunk):
            return NotImplemented
        return self.sample_rate == other.sample_rate and self.pcm == other.pcm

    def __hash__(self) -> int:
        return hash((self.pcm, self.sample_rate))

    def __repr__(self) -> str:
        return f"AudioChunk({self.nbytes} bytes, sample_rate={self.sample_rate})"


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One still camera or screen frame."""

    image: bytes
    mime_type: str = "image/jpeg"


@dataclass(frozen=True, slots=True)
class TextInput:
    """Text typed mid-conversation (``realtimeInput.text``)."""

    text: str


@dataclass(frozen=True, slots=True)
class ActivityStart:
    """The user started speaking (manual turn-taking)."""


@dataclass(frozen=True, slots=True)
class ActivityEnd:
    """The user stopped speaking (manual turn-taking)."""


@dataclass(frozen=True, slots=True)
class AudioStreamEnd:
    """The microphone paused: flush what was heard."""


@dataclass(frozen=True, slots=True)
class ClientTurns:
    """Ordered history; ``turn_complete`` asks for a reply now.

    ``turns`` may be empty with ``turn_complete`` set: Pastra's "end of turn"
    signal, meaning "answer what you have heard".
    """

    turns: list[Content] = field(default_factory=list)
    turn_complete: bool = False


@dataclass(frozen=True, slots=True)
class ToolResponses:
    """Answers to earlier tool calls, matched by id."""

    responses: list[FunctionResponse]


@dataclass(frozen=True, slots=True)
class ContextChange:
    """A mid-session change of system instruction or tools."""

    update: ContextUpdate


ClientEvent = (
    AudioChunk
    | VideoFrame
    | TextInput
    | ActivityStart
    | ActivityEnd
    | AudioStreamEnd
    | ClientTurns
    | ToolResponses
    | ContextChange
)


def audio_rate_from_mime(mime_type: str, where: str) -> int:
    """The sample rate an ``audio/pcm`` mime type names (16 kHz when it names none)."""
    rate = _audio_rate(mime_type) if len(mime_type) <= MAX_CACHED_MIME else _audio_rate.__wrapped__(mime_type)
    if rate is None:
        raise ProtocolError(f"{where}: mimeType {mime_type} is not supported; send {AUDIO_MIME_HINT}")
    if not MIN_AUDIO_RATE <= rate <= MAX_AUDIO_RATE:
        raise ProtocolError(
            f"{where}: rate {rate} is outside {MIN_AUDIO_RATE}-{MAX_AUDIO_RATE} Hz; send {AUDIO_MIME_HINT}"
        )
    return rate


@lru_cache(maxsize=64)
def _audio_rate(mime_type: str) -> int | None:
    """The rate an ``audio/pcm`` mime type names, None when it is not one (a client sends one type per chunk)."""
    match = _AUDIO_MIME.match(mime_type.strip())
    return None if match is None else int(match.group(1) or INPUT_AUDIO_RATE)


def _audio_chunk(blob: Blob, where: str) -> AudioChunk:
    rate = audio_rate_from_mime(blob.mime_type, where)
    if len(blob.data) % 2:
        raise ProtocolError(f"{where}: {len(blob.data)} bytes is not a whole number of 16-bit samples")
    return AudioChunk(pcm=blob.data, sample_rate=rate)


def _video_frame(blob: Blob, where: str) -> VideoFrame:
    mime = blob.mime_type.strip().lower()
    signatures = _IMAGE_SIGNATURES.get(mime)
    if signatures is None:
        raise ProtocolError(f"{where}: mimeType {blob.mime_type} is not supported; send image/jpeg")
    if not blob.data.startswith(signatures):
        raise ProtocolError(f"{where}: data is not a {mime.removeprefix('image/').upper()} image")
    return VideoFrame(image=blob.data, mime_type=mime)


def _media_chunk(blob: Blob, where: str) -> AudioChunk | VideoFrame:
    mime = blob.mime_type.strip().lower()
    if mime.startswith("audio/"):
        return _audio_chunk(blob, where)
    if mime.startswith("image/"):
        return _video_frame(blob, where)
    raise ProtocolError(f"{where}: mimeType {blob.mime_type} is not supported; send {AUDIO_MIME_HINT} or image/jpeg")


def _realtime_events(realtime: RealtimeInput) -> list[ClientEvent]:
    events: list[ClientEvent] = []
    for index, chunk in enumerate(realtime.media_chunks or []):
        events.append(_media_chunk(chunk, f"realtimeInput.mediaChunks[{index}]"))
    if realtime.audio is not None:
        events.append(_audio_chunk(realtime.audio, "realtimeInput.audio"))
    if realtime.video is not None:
        events.append(_video_frame(realtime.video, "realtimeInput.video"))
    if realtime.activity_start is not None:
        events.append(ActivityStart())
    if realtime.text is not None:
        events.append(TextInput(realtime.text))
    if realtime.activity_end is not None:
        events.append(ActivityEnd())
    if realtime.audio_stream_end:
        events.append(AudioStreamEnd())
    if not events and realtime.audio_stream_end is None and realtime.media_chunks is None:
        raise ProtocolError("realtimeInput: empty message; send audio, video, text or an activity signal")
    return events


def _content_events(content: ClientContent) -> list[ClientEvent]:
    turns = [turn for turn in content.turns or [] if turn.parts]
    for index, turn in enumerate(turns):
        for part_index, part in enumerate(turn.parts):
            if part.inline_data is not None:
                where = f"clientContent.turns[{index}].parts[{part_index}].inlineData"
                _media_chunk(part.inline_data, where)
    turn_complete = bool(content.turn_complete)
    if not turns and not turn_complete:
        # Pastra's "continue" signal after every audio chunk: nothing to do.
        return []
    return [ClientTurns(turns=turns, turn_complete=turn_complete)]


def client_events(message: ClientMessage) -> list[ClientEvent]:
    """The events a non-setup client message carries, checked and normalised."""
    if message.realtime_input is not None:
        return _realtime_events(message.realtime_input)
    if message.client_content is not None:
        return _content_events(message.client_content)
    if message.tool_response is not None:
        for index, response in enumerate(message.tool_response.function_responses):
            if not response.id:
                raise ProtocolError(
                    f"toolResponse.functionResponses[{index}]: id is required; copy it from the toolCall"
                )
        return [ToolResponses(message.tool_response.function_responses)]
    if message.context_update is not None:
        return [ContextChange(message.context_update)]
    raise ProtocolError("setup may only be sent once, as the first message")
