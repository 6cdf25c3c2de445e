"""Between the project's Live models and the google-genai SDK's types.

Both describe the same wire protocol, so conversion goes through the wire's
own shape: our models dump to lowerCamelCase and the SDK's pydantic types
accept those aliases. Three places need more than that:

- ``LiveConnectConfig`` is flat where the wire nests ``generationConfig``;
  the SDK moves its flat fields back under ``generationConfig`` (see
  ``_LiveConnectConfig_to_mldev``), and takes the rest of a generation
  config through its ``generation_config`` field, so every field a client
  sent reaches the upstream setup.
- The server's defaults are applied here, only where the client said
  nothing: AUDIO replies, both transcriptions, a voice, and context window
  compression (the setup is sent before any frame, so compression is on
  from the start for every session that may send video).
- Server frames are read by the project (``upstream_events``): reply audio,
  most of what Gemini sends, becomes ``ReplyAudio`` with Gemini's base64
  text as it is, never decoded; the rest of a frame goes through the SDK's
  own conversion (its Vertex AI field names included), then
  ``model_dump(mode="json", by_alias=True)`` of the SDK's message validates
  as our ``ServerMessage``, which ``server_events`` splits into events.
- Microphone audio goes up the same way (``audio_frame``): the base64 text
  the client sent, in the project's own JSON; the SDK builds every other
  client message.
"""

from __future__ import annotations

import json
import logging
from typing import Any, TypeVar

import orjson
from google.genai import _live_converters, errors, types
from google.genai.live import AsyncSession
from pydantic import BaseModel, ValidationError
from websockets.asyncio.client import ClientConnection

from assistant.backends.gemini.options import GeminiSettings
from assistant.backends.gemini.quirks import PLAIN, ModelQuirks
from assistant.protocol import (
    ActivityEnd,
    ActivityStart,
    AudioChunk,
    AudioStreamEnd,
    ClientEvent,
    ClientTurns,
    Content,
    ContextChange,
    FunctionCall,
    FunctionResponse,
    Part,
    ReplyAudio,
    ServerEvent,
    ServerMessage,
    Setup,
    TextInput,
    ToolResponses,
    VideoFrame,
    server_events,
)
from assistant.protocol.events import AUDIO_MIME_HINT
from assistant.protocol.models import WireModel

# Generation settings that LiveConnectConfig takes as its own (flat) fields.
FLAT_GENERATION_FIELDS = frozenset(
    {
        "responseModalities",
        "temperature",
        "topP",
        "topK",
        "maxOutputTokens",
        "mediaResolution",
        "seed",
        "speechConfig",
        "thinkingConfig",
        "enableAffectiveDialog",
        "translationConfig",
    }
)
MODEL_PREFIX = "models/"
SdkModel = TypeVar("SdkModel", bound=BaseModel)

logger = logging.getLogger("assistant.backends.gemini")


def upstream_model(setup: Setup, settings: GeminiSettings) -> str:
    """The model to ask Gemini for: the server's choice, else the client's, else the default.

    ``models/`` is dropped so the SDK adds the prefix each API wants
    (``models/`` for the Developer API, ``publishers/google/models/`` on Vertex AI).
    The client's name only travels inside the setup message to Gemini, which
    refuses a model it does not serve; it selects nothing on this server.
    """
    if settings.model:
        return settings.model.removeprefix(MODEL_PREFIX)
    return setup.model.strip().removeprefix(MODEL_PREFIX) or settings.default_model


def with_server_defaults(setup: Setup, settings: GeminiSettings) -> dict[str, Any]:
    """The client's setup as wire JSON (camelCase, raw bytes), with the server's defaults filled in."""
    fields = setup.model_dump(by_alias=True, exclude_none=True)
    generation: dict[str, Any] = fields.setdefault("generationConfig", {})
    modalities = generation.setdefault("responseModalities", ["AUDIO"])
    fields.setdefault("inputAudioTranscription", {})
    if "AUDIO" in modalities:
        fields.setdefault("outputAudioTranscription", {})
        voice = generation.setdefault("speechConfig", {}).setdefault("voiceConfig", {})
        if not voice:
            voice["prebuiltVoiceConfig"] = {"voiceName": settings.voice}
    if settings.context_compression:
        fields.setdefault("contextWindowCompression", {"slidingWindow": {}})
    return fields


def connect_config(
    setup: Setup,
    settings: GeminiSettings,
    upstream_handle: str | None,
    quirks: ModelQuirks = PLAIN,
    seeded: bool = False,
) -> types.LiveConnectConfig:
    """The SDK config for one upstream connection of a session.

    The client's ``sessionResumption`` names the project's own handle, which
    Gemini never issued; upstream resumption is always on and presents the
    upstream handle this backend kept, if any. ``quirks`` are the model's
    (see ``quirks``); ``seeded`` says past turns will follow in ``clientContent``.
    """
    fields = with_server_defaults(setup, settings)
    del fields["model"]
    generation = fields.pop("generationConfig")
    flat = {name: generation.pop(name) for name in list(generation) if name in FLAT_GENERATION_FIELDS}
    if not quirks.thinking:
        flat.pop("thinkingConfig", None)
    if seeded and quirks.history_config:
        fields.setdefault("historyConfig", {"initialHistoryInClientContent": True})
    if quirks.non_blocking_default:
        for tool in fields.get("tools", []):
            for declaration in tool.get("functionDeclarations", []):
                declaration.setdefault("behavior", "BLOCKING")
    if generation:
        # Fields LiveConnectConfig has no flat twin for (presencePenalty, stopSequences, ...).
        fields["generationConfig"] = generation
    fields["sessionResumption"] = {"handle": upstream_handle} if upstream_handle else {}
    return types.LiveConnectConfig.model_validate({**fields, **flat})


def to_sdk(model: WireModel, sdk_type: type[SdkModel]) -> SdkModel:
    """One of our models as the SDK's type of the same wire shape (bytes stay bytes)."""
    return sdk_type.model_validate(model.model_dump(by_alias=True, exclude_none=True))


def text_history(history: list[Content]) -> list[types.Content]:
    """Past turns as text, to re-seed a new upstream session that has no handle to resume.

    Tool calls and responses are left out: a response whose call the new
    session never made is an invalid argument to Gemini.
    """
    seeded = []
    for turn in history:
        text = turn.text().strip()
        if text:
            seeded.append(types.Content(role=turn.role or "user", parts=[types.Part(text=text)]))
    return seeded


def unanswered_calls(history: list[Content]) -> dict[str, FunctionCall]:
    """The calls in ``history`` that no response in it answers, by id (a client's call saved mid-turn)."""
    calls = {
        part.function_call.id: part.function_call
        for turn in history
        for part in turn.parts
        if part.function_call is not None and part.function_call.id
    }
    for turn in history:
        for part in turn.parts:
            if part.function_response is not None and part.function_response.id:
                calls.pop(part.function_response.id, None)
    return calls


def answers_as_text(answers: list[tuple[FunctionCall, FunctionResponse]]) -> Content:
    """Results of calls an earlier connection made, as a user turn for a connection that never made them.

    Gemini refuses a functionResponse for a call its session did not make, so
    after a move (or a server restart) the answer is told in words, naming
    the call, so the model can go on where it left off.
    """
    lines = [
        f"(The result of your earlier call {call.name}({json.dumps(call.args, ensure_ascii=False)}) came back: "
        f"{json.dumps(response.response, ensure_ascii=False)})"
        for call, response in answers
    ]
    return Content(role="user", parts=[Part(text="\n".join(lines))])


def from_sdk_message(message: types.LiveServerMessage) -> ServerMessage:
    """The SDK's view of a server message as ours, bytes and casing intact.

    A field a newer SDK knows and our models do not is dropped (and logged)
    rather than failing the whole message: losing a reply over an unknown
    metadata field would be the worse outcome.
    """
    fields = message.model_dump(mode="json", by_alias=True, exclude_none=True)
    try:
        return ServerMessage.model_validate(fields)
    except ValidationError as error:
        unknown = [detail["loc"] for detail in error.errors() if detail["type"] == "extra_forbidden"]
        if not unknown or len(unknown) < error.error_count():
            raise
        try:
            for location in unknown:
                _delete(fields, location)
        except (KeyError, IndexError, TypeError):
            raise error from None
        logger.warning("dropped server message fields the protocol models do not know: %s", unknown)
        return ServerMessage.model_validate(fields)


_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def upstream_events(frame: bytes | str, vertexai: bool) -> list[ServerEvent]:
    """The events of one frame from Gemini: reply audio as Gemini's own base64 text, then the rest.

    Audio parts are taken out of the frame before anything is validated;
    what is left (transcripts, the turn's end, tool calls, metadata), if
    anything, goes through the SDK as before. A frame Gemini sends as an
    error (``{"code": ..., "message": ...}``) raises the SDK's ``APIError``.
    """
    payload: dict[str, Any] = orjson.loads(frame) if frame else {}
    audio: list[ServerEvent] = []
    content = payload.get("serverContent")
    turn = content.get("modelTurn") if isinstance(content, dict) else None
    if isinstance(turn, dict) and isinstance(turn.get("parts"), list):
        rest = []
        for part in turn["parts"]:
            reply = _reply_audio(part)
            if reply is None:
                rest.append(part)
            else:
                audio.append(reply)
        if audio:
            assert isinstance(content, dict)
            content = {name: value for name, value in content.items() if name != "modelTurn"}
            if rest:
                content["modelTurn"] = {**turn, "parts": rest}
            payload = {name: value for name, value in payload.items() if name != "serverContent"}
            if content:
                payload["serverContent"] = content
            if not payload:
                return audio
    return audio + server_events(from_sdk_message(sdk_message(payload, vertexai)))


def _reply_audio(part: object) -> ReplyAudio | None:
    """A part that is only audio (``{"inlineData": {"mimeType": "audio/...", "data": "..."}}``), as Gemini wrote it."""
    if not isinstance(part, dict) or len(part) != 1:
        return None
    blob = part.get("inlineData")
    if not isinstance(blob, dict) or set(blob) != {"mimeType", "data"}:
        return None
    mime, data = blob["mimeType"], blob["data"]
    if not isinstance(mime, str) or not mime.startswith("audio/") or not isinstance(data, str):
        return None
    if "-" in data or "_" in data:  # the URL-safe alphabet: browsers' atob takes the standard one only
        data = data.translate(_URLSAFE_TO_STANDARD)
    return ReplyAudio(data, mime)


def sdk_message(payload: dict[str, Any], vertexai: bool) -> types.LiveServerMessage:
    """A server frame's JSON as the SDK reads it (``AsyncSession._receive``), Vertex AI's field names included."""
    if vertexai:
        fields = _live_converters._LiveServerMessage_from_vertex(payload)
    else:
        fields = _live_converters._LiveServerMessage_from_mldev(payload)
    if not fields and payload:
        errors.APIError.raise_error(payload.get("code") or 0, payload, None)
    return types.LiveServerMessage._from_response(response=fields, kwargs={})


def audio_frame(chunk: AudioChunk) -> bytes:
    """A microphone chunk for Gemini (16 kHz by now) in the base64 text it came in."""
    return orjson.dumps({"realtimeInput": {"audio": {"data": chunk.base64, "mimeType": AUDIO_MIME_HINT}}})


def sdk_websocket(session: AsyncSession) -> ClientConnection:
    """The websocket under the SDK's session, which the project reads and writes audio on itself.

    The SDK opens it (credentials, Vertex AI tokens, the setup in each API's
    dialect) and still writes the rare messages; the audio both ways, fifty
    frames a second, skips its conversions (a base64 decode, a pydantic
    model and an encode per frame).
    """
    return session._ws  # type: ignore[no-any-return]


def _delete(tree: Any, location: tuple[int | str, ...]) -> None:
    for key in location[:-1]:
        tree = tree[key]
    del tree[location[-1]]


async def forward(session: AsyncSession, event: ClientEvent) -> None:
    """Send one client event upstream: audio (already 16 kHz) as it came, the rest with the SDK call that carries it."""
    match event:
        case AudioChunk():
            await sdk_websocket(session).send(audio_frame(event))
        case VideoFrame():
            await session.send_realtime_input(video=types.Blob(data=event.image, mime_type=event.mime_type))
        case TextInput():
            await session.send_realtime_input(text=event.text)
        case ActivityStart():
            await session.send_realtime_input(activity_start=types.ActivityStart())
        case ActivityEnd():
            await session.send_realtime_input(activity_end=types.ActivityEnd())
        case AudioStreamEnd():
            await session.send_realtime_input(audio_stream_end=True)
        case ClientTurns():
            turns: list[types.Content | types.ContentDict] = [to_sdk(turn, types.Content) for turn in event.turns]
            await session.send_client_content(turns=turns or None, turn_complete=event.turn_complete)
        case ToolResponses():
            responses: list[types.FunctionResponseOrDict] = [
                to_sdk(response, types.FunctionResponse) for response in event.responses
            ]
            await session.send_tool_response(function_responses=responses)
        case ContextChange():
            update = event.update
            instruction = to_sdk(update.system_instruction, types.Content) if update.system_instruction else None
            tools: types.ToolListUnion | None = None
            if update.tools is not None:
                tools = [to_sdk(tool, types.Tool) for tool in update.tools]
            await session.send_context_update(system_instruction=instruction, tools=tools)
