"""Property-based tests: random input never escapes as anything but a ProtocolError."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.protocol import ClientMessage, CloseCode, ProtocolError, client_events, parse_client_message
from assistant.session import MemoryResumptionStore, Session
from assistant.session.pipe import PipeClosed, pipe
from tests.support.scripted import ScriptedBackend, idle

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)

# Keys the protocol knows, in both spellings, so generated messages reach deep validation.
KNOWN_KEYS = [
    "setup",
    "clientContent",
    "client_content",
    "realtimeInput",
    "realtime_input",
    "toolResponse",
    "tool_response",
    "audio",
    "video",
    "text",
    "mediaChunks",
    "media_chunks",
    "data",
    "mimeType",
    "mime_type",
    "turns",
    "turnComplete",
    "turn_complete",
    "parts",
    "role",
    "functionResponses",
    "function_responses",
    "id",
    "name",
    "response",
    "activityStart",
    "activityEnd",
    "audioStreamEnd",
    "model",
    "generationConfig",
    "responseModalities",
    "inlineData",
]
protocolish = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=12)
    | st.sampled_from(["AAAA", "_-8=", "audio/pcm;rate=16000", "image/jpeg", "user", "AUDIO"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(KNOWN_KEYS), children, max_size=3)
    ),
    max_leaves=25,
)


def parse_all_the_way(raw: str | bytes) -> None:
    try:
        message = parse_client_message(raw)
        if message.setup is None:
            client_events(message)
    except ProtocolError as error:
        assert error.code in (CloseCode.INVALID_ARGUMENT, CloseCode.POLICY_VIOLATION)
        assert error.reason
    else:
        assert isinstance(message, ClientMessage)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_is_parsed_or_refused_cleanly(value: Any) -> None:
    parse_all_the_way(json.dumps(value))


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KNOWN_KEYS), protocolish, min_size=1, max_size=2))
def test_protocol_shaped_messages_are_parsed_or_refused_cleanly(value: dict[str, Any]) -> None:
    parse_all_the_way(json.dumps(value))


@settings(max_examples=200)
@given(st.binary(max_size=64))
def test_binary_frames_are_parsed_or_refused_cleanly(raw: bytes) -> None:
    parse_all_the_way(raw)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(st.sampled_from(KNOWN_KEYS), protocolish, min_size=1, max_size=2), max_size=4))
def test_a_session_survives_or_closes_with_1007_never_1011(messages: list[dict[str, Any]]) -> None:
    async def scenario() -> None:
        backend = ScriptedBackend(idle)
        server_end, client_end = pipe()
        session = Session(server_end, backend, store=MemoryResumptionStore())
        task = asyncio.create_task(session.run())
        await client_end.send(json.dumps({"setup": {"model": "m"}}))
        await client_end.recv()
        for message in messages:
            try:
                await client_end.send(json.dumps(message))
            except PipeClosed:
                break
        await client_end.close(1000, "done")
        await asyncio.wait_for(task, 5)
        await backend.aclose()
        assert session.close_code in (None, 1000, 1007), (session.close_code, session.close_reason)

    asyncio.run(scenario())
