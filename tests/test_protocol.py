"""The wire protocol without I/O: parsing, normalisation, errors, serialisation."""

from __future__ import annotations

import base64
import json

import pytest
from google.genai import types

from assistant.protocol import (
    ActivityEnd,
    ActivityStart,
    AudioChunk,
    AudioStreamEnd,
    ClientTurns,
    CloseCode,
    ContextChange,
    FunctionCall,
    ProtocolError,
    ServerMessage,
    SetupComplete,
    TextInput,
    ToolResponses,
    UsageMetadata,
    VideoFrame,
    client_events,
    decode_server_message,
    encode_message,
    parse_client_message,
)
from tests.support.sdk_frames import sdk_frame

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256))
PCM = bytes(range(256)) * 2


def events(payload: dict[str, object]) -> list[object]:
    return client_events(parse_client_message(json.dumps(payload)))


def reason_of(payload: object) -> ProtocolError:
    raw = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    with pytest.raises(ProtocolError) as caught:
        message = parse_client_message(raw)
        client_events(message)
    return caught.value


class TestSetup:
    def test_mixed_casing_as_the_sdk_sends_it(self) -> None:
        # Captured from google-genai 3.6.1: camelCase outside, snake_case inside.
        raw = {
            "setup": {
                "model": "models/gemini-live-2.5-flash",
                "generationConfig": {
                    "responseModalities": ["AUDIO"],
                    "speechConfig": {"voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}},
                },
                "systemInstruction": {"parts": [{"text": "be brief"}], "role": "user"},
                "tools": [
                    {
                        "functionDeclarations": [
                            {
                                "name": "get_weather",
                                "parameters": {"type": "OBJECT", "properties": {"city_name": {"type": "STRING"}}},
                                "behavior": "NON_BLOCKING",
                            }
                        ]
                    }
                ],
                "realtimeInputConfig": {"automatic_activity_detection": {"silence_duration_ms": 500}},
                "contextWindowCompression": {"trigger_tokens": 10000, "sliding_window": {"target_tokens": 5000}},
                "sessionResumption": {},
                "inputAudioTranscription": {},
                "outputAudioTranscription": {},
            }
        }
        setup = parse_client_message(json.dumps(raw)).setup
        assert setup is not None
        assert setup.voice_name() == "Kore"
        assert setup.system_instruction is not None and setup.system_instruction.text() == "be brief"
        [declaration] = setup.function_declarations()
        # Schema bodies keep the user's own names.
        assert declaration.parameters == {"type": "OBJECT", "properties": {"city_name": {"type": "STRING"}}}
        assert declaration.behavior == "NON_BLOCKING"
        assert setup.realtime_input_config is not None
        detection = setup.realtime_input_config.automatic_activity_detection
        assert detection is not None and detection.silence_duration_ms == 500
        assert setup.context_window_compression is not None
        assert setup.context_window_compression.sliding_window is not None
        assert setup.context_window_compression.sliding_window.target_tokens == 5000
        assert setup.session_resumption is not None and setup.session_resumption.handle is None
        assert setup.input_audio_transcription is not None

    def test_pastra_setup_with_lower_case_modality(self) -> None:
        raw = {
            "setup": {"model": "models/gemini-2.0-flash-exp", "generation_config": {"response_modalities": ["audio"]}}
        }
        setup = parse_client_message(json.dumps(raw)).setup
        assert setup is not None and setup.response_modalities() == ["AUDIO"]

    def test_system_instruction_as_plain_text(self) -> None:
        setup = parse_client_message(json.dumps({"setup": {"model": "m", "systemInstruction": "hi"}})).setup
        assert setup is not None and setup.system_instruction is not None
        assert setup.system_instruction.text() == "hi"

    def test_modalities_default_to_audio(self) -> None:
        setup = parse_client_message('{"setup": {"model": "m"}}').setup
        assert setup is not None and setup.response_modalities() == ["AUDIO"]


class TestRealtimeInput:
    @pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
    def test_both_base64_alphabets(self, encode: object) -> None:
        data = encode(PCM).decode()  # type: ignore[operator]
        [event] = events({"realtimeInput": {"audio": {"data": data, "mimeType": "audio/pcm;rate=16000"}}})
        assert event == AudioChunk(pcm=PCM, sample_rate=16000)

    def test_unpadded_base64(self) -> None:
        data = base64.b64encode(b"\x01\x02\x03\x04").decode().rstrip("=")
        [event] = events({"realtimeInput": {"audio": {"data": data, "mimeType": "audio/pcm"}}})
        assert event == AudioChunk(pcm=b"\x01\x02\x03\x04")

    def test_rate_from_mime_type(self) -> None:
        data = base64.b64encode(PCM).decode()
        [event] = events({"realtime_input": {"audio": {"data": data, "mime_type": "audio/pcm; rate=48000"}}})
        assert isinstance(event, AudioChunk) and event.sample_rate == 48000

    def test_legacy_media_chunks_route_by_mime_type(self) -> None:
        chunks = [
            {"mime_type": "audio/pcm", "data": base64.b64encode(PCM).decode()},
            {"mimeType": "image/jpeg", "data": base64.b64encode(JPEG).decode()},
        ]
        assert events({"realtime_input": {"media_chunks": chunks}}) == [AudioChunk(PCM), VideoFrame(JPEG)]

    def test_video_text_and_signals(self) -> None:
        assert events(
            {"realtimeInput": {"video": {"data": base64.b64encode(JPEG).decode(), "mimeType": "image/jpeg"}}}
        ) == [VideoFrame(JPEG)]
        assert events({"realtimeInput": {"text": "hello"}}) == [TextInput("hello")]
        assert events({"realtime_input": {"activityStart": {}}}) == [ActivityStart()]
        assert events({"realtime_input": {"activityEnd": {}}}) == [ActivityEnd()]
        assert events({"realtime_input": {"audioStreamEnd": True}}) == [AudioStreamEnd()]


class TestClientContent:
    def test_pastra_continue_signal_is_a_no_op(self) -> None:
        assert events({"client_content": {"turns": [{"role": "user", "parts": []}], "turn_complete": False}}) == []

    def test_pastra_end_signal_asks_for_a_reply(self) -> None:
        assert events({"client_content": {"turns": [{"role": "user", "parts": []}], "turn_complete": True}}) == [
            ClientTurns([], turn_complete=True)
        ]

    def test_turns_are_kept_in_order(self) -> None:
        [event] = events(
            {
                "clientContent": {
                    "turns": [{"role": "user", "parts": [{"text": "a"}]}, {"role": "model", "parts": [{"text": "b"}]}],
                    "turnComplete": True,
                }
            }
        )
        assert isinstance(event, ClientTurns) and event.turn_complete
        assert [(turn.role, turn.text()) for turn in event.turns] == [("user", "a"), ("model", "b")]

    def test_a_single_turn_object_is_accepted(self) -> None:
        [event] = events({"clientContent": {"turns": {"role": "user", "parts": [{"text": "a"}]}, "turnComplete": True}})
        assert isinstance(event, ClientTurns) and event.turns[0].text() == "a"


def test_tool_response_keeps_the_tools_own_keys() -> None:
    [event] = events(
        {
            "tool_response": {
                "functionResponses": [{"id": "c1", "name": "f", "response": {"temp_c": 3}, "scheduling": "INTERRUPT"}]
            }
        }
    )
    assert isinstance(event, ToolResponses)
    assert event.responses[0].response == {"temp_c": 3}
    assert event.responses[0].scheduling == "INTERRUPT"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe\x00garbage", "binary frame is not UTF-8 JSON"),
        ("not json", "message is not valid JSON"),
        ("[1, 2]", "message is an array"),
        ('"text"', "message is a string"),
        ("{}", "empty message; send one of setup"),
        ({"setup": {"model": "m"}, "realtimeInput": {"text": "x"}}, "exactly one of setup, clientContent"),
        ({"hello": 1}, 'unknown field "hello"'),
        (
            {"setup": {"model": "m", "generationConfig": {"voice": "x"}}},
            'setup.generationConfig: unknown field "voice"',
        ),
        ({"setup": {}}, "setup.model: required field is missing"),
        (
            {"realtimeInput": {"audio": {"data": "***", "mimeType": "audio/pcm"}}},
            "realtimeInput.audio.data: data is not valid base64",
        ),
        (
            {"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "audio/wav"}}},
            "realtimeInput.audio: mimeType audio/wav is not supported; send audio/pcm;rate=16000",
        ),
        ({"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "audio/pcm;rate=4000"}}}, "rate 4000 is outside"),
        (
            {"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "audio/pcm"}}},
            "not a whole number of 16-bit samples",
        ),
        (
            {"realtimeInput": {"video": {"data": "AAAA", "mimeType": "image/jpeg"}}},
            "realtimeInput.video: data is not a JPEG image",
        ),
        (
            {"realtimeInput": {"video": {"data": "AAAA", "mimeType": "video/mp4"}}},
            "mimeType video/mp4 is not supported",
        ),
        (
            {"realtimeInput": {"mediaChunks": [{"data": "AAAA", "mimeType": "text/plain"}]}},
            "mediaChunks[0]: mimeType text/plain",
        ),
        ({"realtimeInput": {}}, "realtimeInput: empty message"),
        ({"toolResponse": {"functionResponses": [{"name": "f", "response": {}}]}}, "id is required"),
        ({"setup": {"model": "m", "generationConfig": {"responseModalities": ["SMELL"]}}}, "responseModalities[0]"),
        ({"clientContent": {"turns": [{"role": "robot", "parts": []}]}}, "clientContent.turns[0].role"),
    ],
)
def test_invalid_input_names_the_field(payload: object, reason: str) -> None:
    error = reason_of(payload)
    assert error.code == CloseCode.INVALID_ARGUMENT
    assert reason in error.reason


def test_setup_after_setup_is_refused() -> None:
    with pytest.raises(ProtocolError, match="setup may only be sent once"):
        client_events(parse_client_message('{"setup": {"model": "m"}}'))


class TestServerMessages:
    def test_camel_case_and_standard_base64(self) -> None:
        pcm = b"\xfb\xff\xfe\xff"  # encodes with + and / in the standard alphabet
        wire = json.loads(encode_message(ServerMessage.model_audio(pcm)))
        blob = wire["serverContent"]["modelTurn"]["parts"][0]["inlineData"]
        assert blob == {"data": base64.b64encode(pcm).decode(), "mimeType": "audio/pcm;rate=24000"}
        assert "+" in blob["data"] or "/" in blob["data"]

    def test_empty_objects_stay_empty(self) -> None:
        assert encode_message(ServerMessage(setup_complete=SetupComplete())) == b'{"setupComplete":{}}'

    def test_every_constructor_round_trips(self) -> None:
        messages = [
            ServerMessage.model_audio(b"\x00\x01"),
            ServerMessage.model_text("hi"),
            ServerMessage.input_transcript("what time", finished=True),
            ServerMessage.output_transcript("It is"),
            ServerMessage.interrupted_turn(),
            ServerMessage.generation_done(),
            ServerMessage.turn_done(UsageMetadata(total_token_count=5)),
            ServerMessage.calls([FunctionCall(id="1", name="f", args={"snake_key": 1})]),
            ServerMessage.cancel_calls(["1"]),
        ]
        for message in messages:
            assert decode_server_message(encode_message(message)) == message
        wire = json.loads(encode_message(messages[7]))
        assert wire == {"toolCall": {"functionCalls": [{"id": "1", "name": "f", "args": {"snake_key": 1}}]}}
        assert json.loads(encode_message(messages[6])) == {
            "serverContent": {"turnComplete": True},
            "usageMetadata": {"totalTokenCount": 5},
        }


class TestContextUpdate:
    """``contextUpdate`` as the installed google-genai SDK writes it, captured at test time."""

    LIGHTS = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="dim_lights",
                parameters=types.Schema(
                    type=types.Type.OBJECT, properties={"room_name": types.Schema(type=types.Type.STRING)}
                ),
                behavior=types.Behavior.NON_BLOCKING,
            )
        ]
    )

    @pytest.mark.parametrize("vertexai", [False, True], ids=["gemini-api", "vertex"])
    async def test_every_field_the_sdk_sends(self, vertexai: bool) -> None:
        frame = await sdk_frame(
            lambda s: s.send_context_update(system_instruction="Answer in French.", tools=[self.LIGHTS]),
            vertexai=vertexai,
        )
        assert set(frame["contextUpdate"]) == {"systemInstruction", "tools"}
        [event] = events(frame)
        assert isinstance(event, ContextChange)
        assert event.update.model_fields_set == {"system_instruction", "tools"}
        assert event.update.system_instruction is not None
        assert event.update.system_instruction.text() == "Answer in French."
        assert event.update.tools is not None
        [declaration] = [d for tool in event.update.tools for d in tool.function_declarations or []]
        assert (declaration.name, declaration.behavior) == ("dim_lights", "NON_BLOCKING")
        assert declaration.parameters is not None and "room_name" in declaration.parameters["properties"]

    async def test_an_empty_tool_list_clears_the_tools(self) -> None:
        frame = await sdk_frame(lambda s: s.send_context_update(tools=[]))
        [event] = events(frame)
        assert isinstance(event, ContextChange)
        assert event.update.model_fields_set == {"tools"} and event.update.tools == []

    async def test_instruction_alone_leaves_the_tools_alone(self) -> None:
        frame = await sdk_frame(lambda s: s.send_context_update(system_instruction="Be brief."))
        [event] = events(frame)
        assert isinstance(event, ContextChange) and event.update.model_fields_set == {"system_instruction"}

    def test_the_bare_list_of_older_clients_means_the_same(self) -> None:
        bare = events({"contextUpdate": {"tools": [{"functionDeclarations": [{"name": "f"}]}]}})
        wrapped = events({"contextUpdate": {"tools": {"tools": [{"functionDeclarations": [{"name": "f"}]}]}}})
        assert bare == wrapped
        [empty] = events({"contextUpdate": {"tools": {}}})
        assert isinstance(empty, ContextChange) and empty.update.tools == []

    def test_a_wrapper_with_other_keys_names_the_field(self) -> None:
        error = reason_of({"contextUpdate": {"tools": {"tools": [], "extra": 1}}})
        assert error.code == CloseCode.INVALID_ARGUMENT
        assert "contextUpdate.tools" in error.reason
