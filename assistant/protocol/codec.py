"""Bytes and text in, typed messages out, and back.

Parsing is strict in what it means and lenient in how it is spelled: any
casing, either base64 alphabet, text or binary frames. Every failure is one
``ProtocolError`` with a close code and a reason that names the field.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from assistant.protocol.errors import ProtocolError
from assistant.protocol.models import CLIENT_MESSAGE_KINDS, ClientMessage, ServerMessage, WireModel


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


def parse_client_message(data: str | bytes) -> ClientMessage:
    """Decode one client frame; raise ``ProtocolError`` (1007) when it is not a Live message."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("binary frame is not UTF-8 JSON; send one JSON object per message") from None
    try:
        payload: Any = json.loads(data)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError("message is not valid JSON; send one JSON object per message", detail=str(exc)) from None
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


def decode_server_message(data: str | bytes) -> ServerMessage:
    """Parse a server frame (for clients and tests of the project's own server)."""
    return ServerMessage.model_validate_json(data)
