"""Server events: what a backend says, before anyone writes it as JSON.

The mirror of ``events``: a backend yields these small objects, the session
routes them (tool calls to whoever runs them, interruptions flush queued
audio, a completed turn saves the conversation), and ``codec.encode_event``
writes each as one wire message at the edge. Nothing inside the server
probes a wire model to find out what it holds.

Reply audio is carried as the base64 text it travels in: what Gemini sends
reaches the client without a decode and an encode, its weight is the
string's length, and ``ReplyAudio.pcm`` decodes only where someone needs
samples.

``server_events`` splits a validated ``ServerMessage`` (a wire message, as a
test double or a parsed upstream frame holds it) into events, reply audio
first, in the order of the fields on the wire.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from assistant.protocol.models import (
    OUTPUT_AUDIO_RATE,
    FunctionCall,
    Part,
    ServerMessage,
    ServerToolActivity,
    Transcription,
    UsageMetadata,
)

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URLSAFE_BASE64 = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_RATE = re.compile(r"rate\s*=\s*(\d+)", re.IGNORECASE)


def base64_size(text: str) -> int:
    """How many bytes padded base64 ``text`` decodes to, without decoding it."""
    return len(text) * 3 // 4 - text.endswith("=") - text.endswith("==")


def plain_base64(text: str) -> bool:
    """Padded base64 in either alphabet, nothing else: safe to pass on as it is."""
    return not len(text) % 4 and (_BASE64.fullmatch(text) is not None or _URLSAFE_BASE64.fullmatch(text) is not None)


def decode_base64(text: str) -> bytes:
    """Decode base64 that ``plain_base64`` accepted (either alphabet)."""
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        return base64.urlsafe_b64decode(text)


@lru_cache(maxsize=16)
def _mime_rate(mime_type: str) -> int:
    """The rate reply audio's mime type names (24 kHz when it names none); a backend uses one or two."""
    match = _RATE.search(mime_type)
    return int(match.group(1)) if match else OUTPUT_AUDIO_RATE


@dataclass(frozen=True, slots=True)
class ReplyAudio:
    """A chunk of the spoken reply: 16-bit mono PCM, as base64 text (standard or URL-safe alphabet)."""

    data: str
    mime_type: str = f"audio/pcm;rate={OUTPUT_AUDIO_RATE}"

    @classmethod
    def from_pcm(cls, pcm: bytes, sample_rate: int = OUTPUT_AUDIO_RATE) -> ReplyAudio:
        return cls(base64.b64encode(pcm).decode("ascii"), f"audio/pcm;rate={sample_rate}")

    @property
    def pcm(self) -> bytes:
        """The samples (decoded now: only for those who need them)."""
        return decode_base64(self.data)

    @property
    def sample_rate(self) -> int:
        return _mime_rate(self.mime_type)

    @property
    def duration_s(self) -> float:
        rate = self.sample_rate
        return base64_size(self.data) / 2 / rate if rate > 0 else 0.0


@dataclass(frozen=True, slots=True)
class ReplyText:
    """A piece of a text reply (TEXT modality)."""

    text: str


@dataclass(frozen=True, slots=True)
class ReplyParts:
    """Model-turn parts other than audio and plain text (thoughts, code, files), relayed as the model sent them."""

    parts: list[Part]


@dataclass(frozen=True, slots=True)
class InputTranscript:
    """What the user said, in fragments; ``finished`` on the last one of a turn."""

    text: str
    finished: bool = False
    language_code: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other transcription fields (words, offsets), wire names


@dataclass(frozen=True, slots=True)
class OutputTranscript:
    """What the reply says, in fragments."""

    text: str
    finished: bool = False
    language_code: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other transcription fields (words, offsets), wire names


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The user talked over the reply: what was queued of it is dropped."""


@dataclass(frozen=True, slots=True)
class GenerationComplete:
    """The model has generated the whole reply (it may still be playing)."""


@dataclass(frozen=True, slots=True)
class TurnComplete:
    """The end of a turn; ``reason`` is a ``turnCompleteReason`` (NEED_MORE_INPUT also means waitingForInput)."""

    reason: str | None = None
    usage: UsageMetadata | None = None  # sent in the same message, as Gemini does
    waiting_for_input: bool | None = None

    def waiting(self) -> bool | None:
        return self.waiting_for_input or (self.reason == "NEED_MORE_INPUT") or None


@dataclass(frozen=True, slots=True)
class ContentMetadata:
    """``serverContent`` fields relayed untouched (grounding and URL metadata, interim transcripts), wire names."""

    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCalls:
    """Calls the model makes."""

    calls: list[FunctionCall]


@dataclass(frozen=True, slots=True)
class EarlyToolCalls:
    """Calls a reply would make, asked for while the user only pauses: never on the wire.

    A backend that prepares its reply before the turn has surely ended (the
    local stack does, behind a gate) sends these so that the session can run
    the read-only ones now; their answers come back as usual. The same calls
    follow as ``ToolCalls``, under the same ids, once the reply is committed
    (the session then records them and does not run them again), or a
    ``ToolCancellation`` of their ids if the user went on (the session drops
    them; the client never hears of either).
    """

    calls: list[FunctionCall]


@dataclass(frozen=True, slots=True)
class ToolCancellation:
    """Calls the model no longer wants answered."""

    ids: list[str]


@dataclass(frozen=True, slots=True)
class GoingAway:
    """The connection ends after ``time_left`` (a protobuf Duration, "5s")."""

    time_left: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts on their own (``usageMetadata`` without a turn's end)."""

    usage: UsageMetadata


@dataclass(frozen=True, slots=True)
class VoiceActivityEvent:
    """The server heard speech start or end (``voiceActivity``: ACTIVITY_START / ACTIVITY_END)."""

    type: str | None = None
    audio_offset: str | None = None


@dataclass(frozen=True, slots=True)
class VadSignal:
    """``voiceActivityDetectionSignal`` (VAD_SIGNAL_TYPE_SOS / _EOS), when the setup asked for it."""

    vad_signal_type: str | None = None


@dataclass(frozen=True, slots=True)
class ResumptionUpdate:
    """A resumption point: a new handle, or ``resumable: false`` while it cannot be taken."""

    new_handle: str | None = None
    resumable: bool | None = None
    last_consumed_client_message_index: int | None = None


@dataclass(frozen=True, slots=True)
class SetupDone:
    """The answer to the client's setup (``setupComplete``)."""

    session_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other setupComplete fields, wire names


@dataclass(frozen=True, slots=True)
class ToolActivity:
    """A server-side tool call as it runs: the project's opt-in extension (``?events=tools``)."""

    activity: ServerToolActivity


ServerEvent = (
    ReplyAudio
    | ReplyText
    | ReplyParts
    | InputTranscript
    | OutputTranscript
    | Interrupted
    | GenerationComplete
    | TurnComplete
    | ContentMetadata
    | ToolCalls
    | EarlyToolCalls
    | ToolCancellation
    | GoingAway
    | Usage
    | VoiceActivityEvent
    | VadSignal
    | ResumptionUpdate
    | SetupDone
    | ToolActivity
)

# serverContent fields relayed untouched, in wire names (the rest are events of their own).
_METADATA_FIELDS = (
    "grounding_metadata",
    "url_context_metadata",
    "interim_input_transcription",
    "interaction_status",
)


def server_events(message: ServerMessage) -> list[ServerEvent]:
    """The events one validated server message holds: reply audio first, then the rest in wire order."""
    events: list[ServerEvent] = []
    if message.setup_complete is not None:
        done = message.setup_complete
        extra = done.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"session_id"})
        events.append(SetupDone(done.session_id, extra))
    content = message.server_content
    if content is not None:
        if content.model_turn is not None:
            events.extend(_model_turn_events(content.model_turn.parts))
        if content.input_transcription is not None:
            heard = content.input_transcription
            events.append(InputTranscript(heard.text or "", bool(heard.finished), heard.language_code, _extra(heard)))
        if content.output_transcription is not None:
            said = content.output_transcription
            events.append(OutputTranscript(said.text or "", bool(said.finished), said.language_code, _extra(said)))
        metadata = content.model_dump(mode="json", by_alias=True, exclude_none=True, include=set(_METADATA_FIELDS))
        if metadata:
            events.append(ContentMetadata(metadata))
        if content.interrupted:
            events.append(Interrupted())
        if content.generation_complete:
            events.append(GenerationComplete())
        if content.turn_complete:
            events.append(
                TurnComplete(content.turn_complete_reason, message.usage_metadata, content.waiting_for_input)
            )
        elif content.waiting_for_input is not None or content.turn_complete_reason is not None:
            events.append(
                ContentMetadata(
                    content.model_dump(
                        by_alias=True, exclude_none=True, include={"waiting_for_input", "turn_complete_reason"}
                    )
                )
            )
    if message.tool_call is not None:
        events.append(ToolCalls(list(message.tool_call.function_calls)))
    if message.tool_call_cancellation is not None:
        events.append(ToolCancellation(list(message.tool_call_cancellation.ids)))
    if message.usage_metadata is not None and not (content is not None and content.turn_complete):
        events.append(Usage(message.usage_metadata))
    if message.go_away is not None:
        events.append(GoingAway(message.go_away.time_left))
    if message.session_resumption_update is not None:
        update = message.session_resumption_update
        events.append(ResumptionUpdate(update.new_handle, update.resumable, update.last_consumed_client_message_index))
    if message.voice_activity_detection_signal is not None:
        events.append(VadSignal(message.voice_activity_detection_signal.vad_signal_type))
    if message.voice_activity is not None:
        events.append(VoiceActivityEvent(message.voice_activity.type, message.voice_activity.audio_offset))
    if message.server_tool_activity is not None:
        events.append(ToolActivity(message.server_tool_activity))
    return events


def _extra(transcription: Transcription) -> dict[str, Any]:
    return transcription.model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude={"text", "finished", "language_code"}
    )


def _model_turn_events(parts: list[Part]) -> list[ServerEvent]:
    audio: list[ServerEvent] = []
    rest: list[Part] = []
    for part in parts:
        blob = part.inline_data
        if blob is not None and blob.mime_type.startswith("audio/") and _only_inline_data(part):
            audio.append(ReplyAudio(base64.b64encode(blob.data).decode("ascii"), blob.mime_type))
        else:
            rest.append(part)
    if not rest:
        return audio
    if all(part.text is not None and part.model_fields_set == {"text"} for part in rest):
        return [*audio, ReplyText("".join(part.text or "" for part in rest))]
    return [*audio, ReplyParts(rest)]


def _only_inline_data(part: Part) -> bool:
    return all(getattr(part, name) is None for name in part.model_fields_set if name != "inline_data")
