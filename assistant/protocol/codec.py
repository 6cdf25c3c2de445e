"""Bytes and text in, typed messages out, and back.

Parsing is strict in what it means and lenient in how it is spelled: any
casing, either base64 alphabet, text or binary frames. Every failure is one
``ProtocolError`` with a close code and a reason that names the field.

The wire JSON is read and written here only, with orjson. A microphone
chunk, the message a client sends fifty times a second, is recognised
before any model is built (``decode_client_frame``) and keeps its base64
text; server events are written straight from their fields
(``encode_event``), reply audio as the base64 text it came in.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from assistant.protocol.errors import ProtocolError
from assistant.protocol.events import AudioChunk, audio_rate_from_mime
from assistant.protocol.models import CLIENT_MESSAGE_KINDS, ClientMessage, ServerMessage, WireModel
from assistant.protocol.server_events import (
    ContentMetadata,
    EarlyToolCalls,
    GenerationComplete,
    GoingAway,
    InputTranscript,
    Interrupted,
    OutputTranscript,
    ReplyAudio,
    ReplyParts,
    ReplyText,
    ResumptionUpdate,
    ServerEvent,
    SetupDone,
    ToolActivity,
    ToolCalls,
    ToolCancellation,
    TurnComplete,
    Usage,
    VadSignal,
    VoiceActivityEvent,
    base64_size,
    plain_base64,
)

_AUDIO_KEYS = ({"data", "mimeType"}, {"data", "mime_type"})


def _path(location: tuple[int | str, ...]) -> str:
    """``('realtime_input', 'audio', 'mime_type')`` -> ``realtimeInput.audio.mimeType``."""
    text = ""
    for item in location:
        if isinstance(item, int):
            text += f"[{item}]"
        elif item in {"function-after", "function-before", "function-plain"} or "[" in item:
            continue  # pydantic's validator frames, not fields
        else:
            text += ("." if text else "") + to_camel(item)
    return text


def _reason(error: ValidationError) -> str:
    """One readable sentence for the first problem pydantic found."""
    detail = error.errors(include_url=False)[0]
    location = tuple(detail["loc"])
    kind = detail["type"]
    if kind == "extra_forbidden":
        parent, name = _path(location[:-1]), location[-1]
        where = parent or "message"
        if not parent:
            return f'unknown field "{name}"; a client message holds one of {", ".join(CLIENT_MESSAGE_KINDS)}'
        return f'{where}: unknown field "{name}"'
    where = _path(location) or "message"
    if kind == "missing":
        return f"{where}: required field is missing"
    if kind in {"value_error", "assertion_error"}:
        message = str(detail.get("ctx", {}).get("error", detail["msg"]))
        return f"{where}: {message}" if location else message
    message = detail["msg"][:1].lower() + detail["msg"][1:]
    if kind == "literal_error":
        return f"{where}: {message}, got {detail['input']!r}"
    return f"{where}: {message}"


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _load(data: str | bytes) -> Any:
    """The frame's JSON; orjson first, the standard library for what orjson refuses (NaN, huge integers)."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("binary frame is not UTF-8 JSON; send one JSON object per message") from None
    try:
        return json.loads(data)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError("message is not valid JSON; send one JSON object per message", detail=str(exc)) from None


def _plain_audio(payload: Any) -> AudioChunk | None:
    """A microphone chunk with padded base64 of whole samples, as an ``AudioChunk``; else None.

    ``{"realtimeInput": {"audio": {...}}}``, or the legacy form Pastra pages
    send, ``{"realtimeInput": {"mediaChunks": [{...}]}}`` with one audio chunk.
    """
    if len(payload) != 1:
        return None
    realtime = payload.get("realtimeInput", payload.get("realtime_input"))
    if not isinstance(realtime, dict) or len(realtime) != 1:
        return None
    if "audio" in realtime:
        audio, where = realtime["audio"], "realtimeInput.audio"
    else:
        chunks = realtime.get("mediaChunks", realtime.get("media_chunks"))
        if not isinstance(chunks, list) or len(chunks) != 1:
            return None
        audio, where = chunks[0], "realtimeInput.mediaChunks[0]"
    if not isinstance(audio, dict) or set(audio) not in _AUDIO_KEYS:
        return None
    data, mime = audio["data"], audio.get("mimeType", audio.get("mime_type"))
    if not isinstance(mime, str) or not mime.lstrip().lower().startswith("audio/"):
        return None
    if not isinstance(data, str) or not plain_base64(data) or base64_size(data) % 2:
        return None  # the full path decodes it, and says what is wrong
    return AudioChunk(base64=data, sample_rate=audio_rate_from_mime(mime, where))


def decode_client_frame(data: str | bytes) -> ClientMessage | AudioChunk:
    """One client frame: a microphone chunk as it came (no model, no decoding), anything else validated."""
    payload = _load(data)
    if isinstance(payload, dict):
        chunk = _plain_audio(payload)
        if chunk is not None:
            return chunk
    return _validated(payload)


def plain_audio_frame(data: str | bytes) -> AudioChunk | None:
    """The frame as a microphone chunk when it is exactly one (see ``_plain_audio``); None for anything else.

    Raises nothing: what is not plain audio, well-formed or not, is for
    ``decode_client_frame`` to read and, where it is wrong, to explain.
    """
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    try:
        return _plain_audio(payload)
    except ProtocolError:
        return None


def parse_client_message(data: str | bytes) -> ClientMessage:
    """Decode one client frame; raise ``ProtocolError`` (1007) when it is not a Live message."""
    return _validated(_load(data))


def _validated(payload: Any) -> ClientMessage:
    if not isinstance(payload, dict):
        raise ProtocolError(f"message is {_json_kind(payload)}; send one JSON object per message")
    if not payload:
        raise ProtocolError(f"empty message; send one of {', '.join(CLIENT_MESSAGE_KINDS)}")
    try:
        return ClientMessage.model_validate(payload)
    except ValidationError as exc:
        raise ProtocolError(_reason(exc)) from None
    except RecursionError:
        raise ProtocolError("message is nested too deeply") from None


def encode_message(message: WireModel) -> bytes:
    """UTF-8 JSON in lowerCamelCase with standard base64, as the service sends it."""
    return message.model_dump_json(exclude_none=True, by_alias=True).encode("utf-8")


def _wire(model: WireModel) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _transcription(event: InputTranscript | OutputTranscript) -> dict[str, Any]:
    fields: dict[str, Any] = {**event.extra, "text": event.text}
    if event.finished:
        fields["finished"] = True
    if event.language_code is not None:
        fields["languageCode"] = event.language_code
    return fields


def _without_none(fields: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def event_wire(event: ServerEvent) -> dict[str, Any]:
    """The wire message (lowerCamelCase JSON fields) that carries ``event``."""
    match event:
        case ReplyAudio():
            return {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": event.mime_type,
                                                                               "data": event.data}}]}}}
        case ReplyText():
            return {"serverContent": {"modelTurn": {"role": "model", "parts": [{"text": event.text}]}}}
        case ReplyParts():
            return {"serverContent": {"modelTurn": {"role": "model", "parts": [_wire(part) for part in event.parts]}}}
        case InputTranscript():
            return {"serverContent": {"inputTranscription": _transcription(event)}}
        case OutputTranscript():
            return {"serverContent": {"outputTranscription": _transcription(event)}}
        case Interrupted():
            return {"serverContent": {"interrupted": True}}
        case GenerationComplete():
            return {"serverContent": {"generationComplete": True}}
        case TurnComplete():
            content = {"turnComplete": True, "turnCompleteReason": event.reason, "waitingForInput": event.waiting()}
            message: dict[str, Any] = {"serverContent": _without_none(content)}
            if event.usage is not None:
                message["usageMetadata"] = _wire(event.usage)
            return message
        case ContentMetadata():
            return {"serverContent": event.fields}
        case ToolCalls():
            return {"toolCall": {"functionCalls": [_wire(call) for call in event.calls]}}
        case ToolCancellation():
            return {"toolCallCancellation": {"ids": event.ids}}
        case EarlyToolCalls():
            raise TypeError("early tool calls stay between a backend and its session; they have no wire form")
        case GoingAway():
            return {"goAway": _without_none({"timeLeft": event.time_left})}
        case Usage():
            return {"usageMetadata": _wire(event.usage)}
        case VoiceActivityEvent():
            return {"voiceActivity": _without_none({"type": event.type, "audioOffset": event.audio_offset})}
        case VadSignal():
            return {"voiceActivityDetectionSignal": _without_none({"vadSignalType": event.vad_signal_type})}
        case ResumptionUpdate():
            update = {
                "newHandle": event.new_handle,
                "resumable": event.resumable,
                "lastConsumedClientMessageIndex": event.last_consumed_client_message_index,
            }
            return {"sessionResumptionUpdate": _without_none(update)}
        case SetupDone():
            return {"setupComplete": {**event.extra, **_without_none({"sessionId": event.session_id})}}
        case ToolActivity():
            return {"serverToolActivity": _wire(event.activity)}
    raise TypeError(f"not a server event: {event!r}")  # pragma: no cover


def encode_event(event: ServerEvent) -> bytes:
    """One server event as the wire message that carries it (UTF-8 JSON, lowerCamelCase)."""
    return orjson.dumps(event_wire(event))


def decode_server_message(data: str | bytes) -> ServerMessage:
    """Parse a server frame (for clients and tests of the project's own server)."""
    return ServerMessage.model_validate_json(data)
