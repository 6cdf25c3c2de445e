"""Typed models of every Live client and server message.

Python names are snake_case; the wire is lowerCamelCase. Input may use either
spelling, mixed inside one message (the google-genai SDK itself writes
``realtime_input`` around ``activityStart``), so every model validates by name
and by alias. Output is always lowerCamelCase: the SDK crashes on a snake_case
top-level server key.

Unknown fields are rejected, as the real service rejects them, so a typo in a
client's setup is reported instead of silently ignored. Fields the project
relays but does not interpret (grounding metadata, safety settings, schema
bodies, tool arguments) are typed ``Any`` and pass through untouched: their
keys are the user's names (a tool parameter called ``city_name`` stays
``city_name``).

Bytes are base64 on the wire. Both alphabets decode (the Python SDK sends
URL-safe, browsers send standard); output is always standard.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def _decode_base64(value: object) -> bytes:
    """Decode standard or URL-safe base64, padded or not; pass raw bytes through."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")
    text = value.strip().translate(_URLSAFE_TO_STANDARD)
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("data is not valid base64") from None


def _encode_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


Base64Bytes = Annotated[
    bytes,
    BeforeValidator(_decode_base64),
    PlainSerializer(_encode_base64, return_type=str, when_used="json"),
]


class WireModel(BaseModel):
    """Base for all Live messages: either casing in, lowerCamelCase out."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
    )


# --------------------------------------------------------------------------
# Shared building blocks
# --------------------------------------------------------------------------


class Blob(WireModel):
    """Inline bytes with their mime type (audio chunks, video frames, images)."""

    data: Base64Bytes
    mime_type: str
    display_name: str | None = None


class FunctionCall(WireModel):
    """A call the model makes; ``args`` are the tool's own names, untouched."""

    id: str | None = None
    name: str
    args: dict[str, Any] = {}
    partial_args: Any = None
    will_continue: bool | None = None


Scheduling = Literal["SCHEDULING_UNSPECIFIED", "SILENT", "WHEN_IDLE", "INTERRUPT"]


class FunctionResponse(WireModel):
    """A tool's answer, matched to its call by ``id``."""

    id: str | None = None
    name: str | None = None
    response: dict[str, Any] | None = None
    scheduling: Scheduling | None = None
    will_continue: bool | None = None
    parts: list[Any] | None = None


class Part(WireModel):
    """One piece of a turn. The fields the project acts on are typed."""

    text: str | None = None
    inline_data: Blob | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    thought: bool | None = None
    thought_signature: Base64Bytes | None = None
    file_data: Any = None
    executable_code: Any = None
    code_execution_result: Any = None
    video_metadata: Any = None
    media_resolution: Any = None
    tool_call: Any = None
    tool_response: Any = None
    part_metadata: Any = None
    audio_transcription: Any = None
    media_processing: Any = None
    speech_metadata: Any = None
    document_metadata: Any = None
    spreadsheet_metadata: Any = None
    audio_metadata: Any = None


class Content(WireModel):
    """A turn of the conversation: who spoke and what."""

    role: Literal["user", "model"] | None = None
    parts: list[Part] = []

    def text(self) -> str:
        """The turn's text parts joined, for history and logs."""
        return "".join(part.text or "" for part in self.parts)


def _text_to_content(value: object) -> object:
    """Accept a bare string where a Content is expected (a common client shortcut)."""
    if isinstance(value, str):
        return {"parts": [{"text": value}]}
    return value


InstructionContent = Annotated[Content, BeforeValidator(_text_to_content)]


# --------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------

Behavior = Literal["UNSPECIFIED", "BLOCKING", "NON_BLOCKING"]


class FunctionDeclaration(WireModel):
    """A tool the model may call. Schema bodies are kept verbatim."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    parameters_json_schema: Any = None
    response: Any = None
    response_json_schema: Any = None
    behavior: Behavior | None = None


class Tool(WireModel):
    """One entry of ``setup.tools``; only function declarations are interpreted."""

    function_declarations: list[FunctionDeclaration] | None = None
    google_search: Any = None
    google_search_retrieval: Any = None
    code_execution: Any = None
    retrieval: Any = None
    computer_use: Any = None
    file_search: Any = None
    google_maps: Any = None
    enterprise_web_search: Any = None
    parallel_ai_search: Any = None
    url_context: Any = None
    mcp_servers: Any = None
    exa_ai_search: Any = None


class PrebuiltVoiceConfig(WireModel):
    voice_name: str | None = None


class VoiceConfig(WireModel):
    prebuilt_voice_config: PrebuiltVoiceConfig | None = None
    replicated_voice_config: Any = None
    voice: Any = None


class SpeechConfig(WireModel):
    voice_config: VoiceConfig | None = None
    language_code: str | None = None
    multi_speaker_voice_config: Any = None


Modality = Literal["TEXT", "AUDIO", "IMAGE", "VIDEO", "MODALITY_UNSPECIFIED"]


class GenerationConfig(WireModel):
    """Generation settings; the ones a backend acts on are typed."""

    response_modalities: list[Modality] | None = None
    speech_config: SpeechConfig | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    max_output_tokens: int | None = None
    candidate_count: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    media_resolution: str | None = None
    thinking_config: Any = None
    enable_affective_dialog: bool | None = None
    model_selection_config: Any = None
    response_json_schema: Any = None
    audio_timestamp: bool | None = None
    logprobs: int | None = None
    response_logprobs: bool | None = None
    response_mime_type: str | None = None
    response_schema: Any = None
    routing_config: Any = None
    stop_sequences: list[str] | None = None
    enable_enhanced_civic_answers: bool | None = None
    response_format: Any = None
    translation_config: Any = None
    audio_transcription_config: Any = None

    @field_validator("response_modalities", mode="before")
    @classmethod
    def _upper_case_modalities(cls, value: object) -> object:
        # Pastra pages send ["audio"]; the service accepts either case.
        if isinstance(value, list):
            return [item.upper() if isinstance(item, str) else item for item in value]
        return value


StartSensitivity = Literal["START_SENSITIVITY_UNSPECIFIED", "START_SENSITIVITY_HIGH", "START_SENSITIVITY_LOW"]
EndSensitivity = Literal["END_SENSITIVITY_UNSPECIFIED", "END_SENSITIVITY_HIGH", "END_SENSITIVITY_LOW"]


class AutomaticActivityDetection(WireModel):
    disabled: bool | None = None
    start_of_speech_sensitivity: StartSensitivity | None = None
    end_of_speech_sensitivity: EndSensitivity | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None


class RealtimeInputConfig(WireModel):
    automatic_activity_detection: AutomaticActivityDetection | None = None
    activity_handling: (
        Literal["ACTIVITY_HANDLING_UNSPECIFIED", "START_OF_ACTIVITY_INTERRUPTS", "NO_INTERRUPTION"] | None
    ) = None
    turn_coverage: (
        Literal[
            "TURN_COVERAGE_UNSPECIFIED",
            "TURN_INCLUDES_ONLY_ACTIVITY",
            "TURN_INCLUDES_ALL_INPUT",
            "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO",
        ]
        | None
    ) = None
    interim_transcript_timestamp_enabled: bool | None = None


class SessionResumptionConfig(WireModel):
    handle: str | None = None
    transparent: bool | None = None


class SlidingWindow(WireModel):
    target_tokens: int | None = None


class ContextWindowCompression(WireModel):
    trigger_tokens: int | None = None
    sliding_window: SlidingWindow | None = None


class AudioTranscriptionConfig(WireModel):
    language_codes: Any = None
    language_auto: Any = None
    language_hints: Any = None
    custom_vocabulary: Any = None
    adaptation_phrases: Any = None
    word_timestamp: Any = None
    diarization: Any = None
    mode: Any = None
    source_text: Any = None


class ProactivityConfig(WireModel):
    proactive_audio: bool | None = None
    proactive_video: bool | None = None


class Setup(WireModel):
    """The first client message: the whole session's configuration."""

    model: str
    generation_config: GenerationConfig | None = None
    system_instruction: InstructionContent | None = None
    tools: list[Tool] | None = None
    realtime_input_config: RealtimeInputConfig | None = None
    session_resumption: SessionResumptionConfig | None = None
    context_window_compression: ContextWindowCompression | None = None
    input_audio_transcription: AudioTranscriptionConfig | None = None
    output_audio_transcription: AudioTranscriptionConfig | None = None
    proactivity: ProactivityConfig | None = None
    explicit_vad_signal: bool | None = None
    history_config: Any = None
    avatar_config: Any = None
    safety_settings: Any = None
    labels: Any = None

    def function_declarations(self) -> list[FunctionDeclaration]:
        """Every function the client declared, across all ``tools`` entries."""
        return [declaration for tool in self.tools or [] for declaration in tool.function_declarations or []]

    def voice_name(self) -> str | None:
        """The prebuilt voice the client asked for, if any."""
        speech = self.generation_config.speech_config if self.generation_config else None
        voice = speech.voice_config if speech else None
        prebuilt = voice.prebuilt_voice_config if voice else None
        return prebuilt.voice_name if prebuilt else None

    def response_modalities(self) -> list[str]:
        """The asked-for modalities, AUDIO when the client did not say (as the SDK does)."""
        config = self.generation_config
        if config is None or not config.response_modalities:
            return ["AUDIO"]
        return list(config.response_modalities)


# --------------------------------------------------------------------------
# Client -> server
# --------------------------------------------------------------------------


class ActivityMarker(WireModel):
    """The empty ``activityStart`` / ``activityEnd`` objects."""


def _single_turn_to_list(value: object) -> object:
    if isinstance(value, dict):
        return [value]
    return value


class ClientContent(WireModel):
    turns: Annotated[list[Content], BeforeValidator(_single_turn_to_list)] | None = None
    turn_complete: bool | None = None


class RealtimeInput(WireModel):
    media_chunks: list[Blob] | None = None
    audio: Blob | None = None
    video: Blob | None = None
    text: str | None = None
    audio_stream_end: bool | None = None
    activity_start: ActivityMarker | None = None
    activity_end: ActivityMarker | None = None


class ToolResponse(WireModel):
    function_responses: list[FunctionResponse]


def _unwrap_tool_list(value: object) -> object:
    """Accept ``{"tools": [...]}`` where a list of tools is expected.

    google-genai 3.6 wraps the list (``LiveClientContextUpdateTools``) so that
    "clear every tool" (an empty list, present) differs from "leave the tools
    alone" (absent); older clients and hand-written pages send the bare list.
    Both mean the same replacement list here, and an empty wrapper clears.
    """
    if isinstance(value, dict) and set(value) <= {"tools"}:
        tools = value.get("tools")
        return [] if tools is None else tools
    return value


class ContextUpdate(WireModel):
    """A mid-session change; a field that is present replaces the setup's (``tools: []`` clears them)."""

    system_instruction: InstructionContent | None = None
    tools: Annotated[list[Tool], BeforeValidator(_unwrap_tool_list)] | None = None


CLIENT_MESSAGE_KINDS = ("setup", "clientContent", "realtimeInput", "toolResponse", "contextUpdate")


class ClientMessage(WireModel):
    """One client frame: exactly one of its fields is set."""

    setup: Setup | None = None
    client_content: ClientContent | None = None
    realtime_input: RealtimeInput | None = None
    tool_response: ToolResponse | None = None
    context_update: ContextUpdate | None = None

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> ClientMessage:
        present = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(present) != 1:
            found = ", ".join(to_camel(name) for name in present) or "none"
            raise ValueError(f"a client message holds exactly one of {', '.join(CLIENT_MESSAGE_KINDS)}; found {found}")
        return self

    @property
    def kind(self) -> str:
        """The wire name of the field this message carries."""
        for name in type(self).model_fields:
            if getattr(self, name) is not None:
                return to_camel(name)
        raise AssertionError("validated ClientMessage has no field")  # pragma: no cover


# --------------------------------------------------------------------------
# Server -> client
# --------------------------------------------------------------------------


class SetupComplete(WireModel):
    session_id: str | None = None
    voice_consent_signature: Any = None


class Transcription(WireModel):
    text: str | None = None
    finished: bool | None = None
    language_code: str | None = None
    speaker_label: Any = None
    words: Any = None
    start_offset: Any = None
    end_offset: Any = None


class ServerContent(WireModel):
    model_turn: Content | None = None
    turn_complete: bool | None = None
    interrupted: bool | None = None
    generation_complete: bool | None = None
    input_transcription: Transcription | None = None
    output_transcription: Transcription | None = None
    grounding_metadata: Any = None
    url_context_metadata: Any = None
    turn_complete_reason: str | None = None
    waiting_for_input: bool | None = None
    interim_input_transcription: Any = None
    interaction_status: Any = None


class ToolCall(WireModel):
    function_calls: list[FunctionCall]


class ToolCallCancellation(WireModel):
    ids: list[str]


class GoAway(WireModel):
    time_left: str | None = None

    @classmethod
    def after(cls, seconds: float) -> GoAway:
        """A goAway whose ``timeLeft`` is ``seconds``, written as a protobuf Duration ("5s", "2.5s")."""
        return cls(time_left=duration(seconds))


class SessionResumptionUpdate(WireModel):
    new_handle: str | None = None
    resumable: bool | None = None
    last_consumed_client_message_index: int | None = None


class UsageMetadata(WireModel):
    prompt_token_count: int | None = None
    cached_content_token_count: int | None = None
    response_token_count: int | None = None
    tool_use_prompt_token_count: int | None = None
    thoughts_token_count: int | None = None
    total_token_count: int | None = None
    prompt_tokens_details: Any = None
    cache_tokens_details: Any = None
    response_tokens_details: Any = None
    tool_use_prompt_tokens_details: Any = None
    traffic_type: Any = None
    service_tier: Any = None


def duration(seconds: float) -> str:
    """``seconds`` written as a protobuf Duration ("5s", "2.5s"), as ``timeLeft`` and ``audioOffset`` are."""
    text = f"{max(0.0, seconds):.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


class VoiceActivity(WireModel):
    """The server's voice activity detector heard speech start or end, at ``audioOffset`` into the input."""

    # ACTIVITY_START or ACTIVITY_END (a str: newer kinds pass through); on the wire it is "type", which
    # the SDK reads into its voice_activity_type
    type: str | None = None
    audio_offset: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _sdk_name(cls, value: Any) -> Any:
        """Take the SDK's name for ``type`` too: the Gemini backend relays the SDK's dump of Gemini's message."""
        if isinstance(value, dict):
            for name in ("voiceActivityType", "voice_activity_type"):
                if name in value and "type" not in value:
                    value = {**{k: v for k, v in value.items() if k != name}, "type": value[name]}
        return value


class VoiceActivityDetectionSignal(WireModel):
    """Start (SOS) or end (EOS) of speech, sent when the setup asks with ``explicitVadSignal``."""

    vad_signal_type: str | None = None  # VAD_SIGNAL_TYPE_SOS, VAD_SIGNAL_TYPE_EOS


class ServerToolActivity(WireModel):
    """A server-side tool call as it runs: the project's extension, not Gemini's.

    Clients see calls to functions they declared (``toolCall``) but not calls
    the server answers itself. A client of this project that shows tool
    activity (the browser page) asks for these with ``?events=tools``; a
    client that does not ask never receives one, so the google-genai SDK
    (which rejects unknown top-level keys) is unaffected.
    """

    id: str
    name: str
    state: Literal["running", "done", "failed", "cancelled"]
    args: dict[str, Any] | None = None
    response: dict[str, Any] | None = None


OUTPUT_AUDIO_RATE = 24_000
OUTPUT_AUDIO_MIME = f"audio/pcm;rate={OUTPUT_AUDIO_RATE}"


class ServerMessage(WireModel):
    """One server frame. Constructors below build the common ones."""

    setup_complete: SetupComplete | None = None
    server_content: ServerContent | None = None
    tool_call: ToolCall | None = None
    tool_call_cancellation: ToolCallCancellation | None = None
    usage_metadata: UsageMetadata | None = None
    go_away: GoAway | None = None
    session_resumption_update: SessionResumptionUpdate | None = None
    voice_activity_detection_signal: VoiceActivityDetectionSignal | None = None
    voice_activity: VoiceActivity | None = None
    server_tool_activity: ServerToolActivity | None = None  # opt-in extension, see ServerToolActivity

    @classmethod
    def model_audio(cls, pcm: bytes, sample_rate: int = OUTPUT_AUDIO_RATE) -> ServerMessage:
        """A chunk of the spoken reply (16-bit mono PCM)."""
        blob = Blob(data=pcm, mime_type=f"audio/pcm;rate={sample_rate}")
        return cls(server_content=ServerContent(model_turn=Content(role="model", parts=[Part(inline_data=blob)])))

    @classmethod
    def model_text(cls, text: str) -> ServerMessage:
        """A piece of a text reply (TEXT modality)."""
        return cls(server_content=ServerContent(model_turn=Content(role="model", parts=[Part(text=text)])))

    @classmethod
    def input_transcript(cls, text: str, finished: bool = False) -> ServerMessage:
        return cls(
            server_content=ServerContent(input_transcription=Transcription(text=text, finished=finished or None))
        )

    @classmethod
    def output_transcript(cls, text: str) -> ServerMessage:
        return cls(server_content=ServerContent(output_transcription=Transcription(text=text)))

    @classmethod
    def interrupted_turn(cls) -> ServerMessage:
        return cls(server_content=ServerContent(interrupted=True))

    @classmethod
    def generation_done(cls) -> ServerMessage:
        return cls(server_content=ServerContent(generation_complete=True))

    @classmethod
    def turn_done(cls, usage: UsageMetadata | None = None, reason: str | None = None) -> ServerMessage:
        """The end of a turn; ``reason`` is a ``turnCompleteReason`` (NEED_MORE_INPUT also means waitingForInput)."""
        content = ServerContent(
            turn_complete=True, turn_complete_reason=reason, waiting_for_input=(reason == "NEED_MORE_INPUT") or None
        )
        return cls(server_content=content, usage_metadata=usage)

    @classmethod
    def calls(cls, calls: list[FunctionCall]) -> ServerMessage:
        return cls(tool_call=ToolCall(function_calls=calls))

    @classmethod
    def cancel_calls(cls, ids: list[str]) -> ServerMessage:
        return cls(tool_call_cancellation=ToolCallCancellation(ids=ids))

    @property
    def is_turn_complete(self) -> bool:
        return bool(self.server_content and self.server_content.turn_complete)

    @property
    def is_interrupted(self) -> bool:
        return bool(self.server_content and self.server_content.interrupted)

    def audio_parts(self) -> list[Blob]:
        """The reply audio this message carries, if any."""
        turn = self.server_content.model_turn if self.server_content else None
        if turn is None:
            return []
        return [
            part.inline_data
            for part in turn.parts
            if part.inline_data is not None and part.inline_data.mime_type.startswith("audio/")
        ]
