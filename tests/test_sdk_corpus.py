"""A conformance corpus: every frame the installed google-genai SDK writes, and every server message kind.

Client frames are captured from the SDK at test time (``sdk_frames``), for
the Gemini API's and Vertex AI's conversions, never typed by hand. Each must
parse into the events it means, and reach the Gemini backend with that
meaning kept: the backend's own ``forward`` re-sends each event through the
SDK, and what it writes must parse back into the same events. Each server
message kind the server writes must be read by the SDK with its values kept.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from google.genai import live, types

from assistant.backends.gemini.convert import forward
from assistant.protocol import (
    ActivityEnd,
    ActivityStart,
    AudioChunk,
    AudioStreamEnd,
    Blob,
    ClientEvent,
    ClientTurns,
    Content,
    ContextChange,
    FunctionCall,
    FunctionResponse,
    Part,
    ServerContent,
    ServerMessage,
    Setup,
    SetupComplete,
    TextInput,
    ToolResponses,
    Transcription,
    UsageMetadata,
    VideoFrame,
    VoiceActivity,
    VoiceActivityDetectionSignal,
    client_events,
    encode_message,
    parse_client_message,
)
from assistant.protocol.models import GoAway, SessionResumptionUpdate, ToolCallCancellation
from tests.conftest import Certificate, ServerFactory
from tests.support.scripted import ScriptedBackend, ScriptedSession
from tests.support.sdk_frames import sdk_frames
from tests.test_server_sdk import sdk_client

PCM = bytes(range(256)) * 2  # every byte value, so both base64 alphabets show
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(64))
LIGHTS = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="turn_on_lights",
            parameters=types.Schema(
                type=types.Type.OBJECT, properties={"room_name": types.Schema(type=types.Type.STRING)}
            ),
        )
    ]
)

Send = Callable[[live.AsyncSession], Awaitable[None]]

# Every send_* call and argument of AsyncSession (3.6), with the events it must mean.
CLIENT_CORPUS: list[tuple[str, Send, list[ClientEvent]]] = [
    (
        "realtime-audio",
        lambda s: s.send_realtime_input(audio=types.Blob(data=PCM, mime_type="audio/pcm;rate=16000")),
        [AudioChunk(PCM, 16000)],
    ),
    (
        "realtime-audio-48k",
        lambda s: s.send_realtime_input(audio=types.Blob(data=PCM, mime_type="audio/pcm;rate=48000")),
        [AudioChunk(PCM, 48000)],
    ),
    (
        "realtime-media-legacy",
        lambda s: s.send_realtime_input(media=types.Blob(data=PCM, mime_type="audio/pcm;rate=16000")),
        [AudioChunk(PCM, 16000)],
    ),
    (
        "realtime-video",
        lambda s: s.send_realtime_input(video=types.Blob(data=JPEG, mime_type="image/jpeg")),
        [VideoFrame(JPEG, "image/jpeg")],
    ),
    ("realtime-text", lambda s: s.send_realtime_input(text="what is this?"), [TextInput("what is this?")]),
    ("activity-start", lambda s: s.send_realtime_input(activity_start=types.ActivityStart()), [ActivityStart()]),
    ("activity-end", lambda s: s.send_realtime_input(activity_end=types.ActivityEnd()), [ActivityEnd()]),
    ("audio-stream-end", lambda s: s.send_realtime_input(audio_stream_end=True), [AudioStreamEnd()]),
    (
        "client-content-turns",
        lambda s: s.send_client_content(
            turns=[
                types.Content(role="user", parts=[types.Part(text="a")]),
                types.Content(role="model", parts=[types.Part(text="b")]),
            ],
            turn_complete=False,
        ),
        [
            ClientTurns(
                [Content(role="user", parts=[Part(text="a")]), Content(role="model", parts=[Part(text="b")])], False
            )
        ],
    ),
    (
        "client-content-image",
        lambda s: s.send_client_content(
            turns=types.Content(
                role="user",
                parts=[types.Part(text="look"), types.Part(inline_data=types.Blob(data=JPEG, mime_type="image/jpeg"))],
            )
        ),
        [
            ClientTurns(
                [
                    Content(
                        role="user",
                        parts=[Part(text="look"), Part(inline_data=Blob(data=JPEG, mime_type="image/jpeg"))],
                    )
                ],
                True,
            )
        ],
    ),
    ("client-content-end-of-turn", lambda s: s.send_client_content(), [ClientTurns([], True)]),
    (
        "tool-response",
        lambda s: s.send_tool_response(
            function_responses=types.FunctionResponse(
                id="c1",
                name="turn_on_lights",
                response={"room_name": "kitchen"},
                scheduling=types.FunctionResponseScheduling.WHEN_IDLE,
                will_continue=True,
            )
        ),
        [
            ToolResponses(
                [
                    FunctionResponse(
                        id="c1",
                        name="turn_on_lights",
                        response={"room_name": "kitchen"},
                        scheduling="WHEN_IDLE",
                        will_continue=True,
                    )
                ]
            )
        ],
    ),
    (
        "context-update",
        lambda s: s.send_context_update(system_instruction="Answer in French.", tools=[LIGHTS]),
        [],  # compared field by field below: the SDK fills in schema defaults
    ),
    ("context-update-clear-tools", lambda s: s.send_context_update(tools=[]), []),
]


@pytest.mark.parametrize("vertexai", [False, True], ids=["gemini-api", "vertex"])
@pytest.mark.parametrize(("send", "expected"), [case[1:] for case in CLIENT_CORPUS], ids=[c[0] for c in CLIENT_CORPUS])
async def test_every_sdk_frame_parses_into_what_it_means(
    send: Send, expected: list[ClientEvent], vertexai: bool
) -> None:
    [frame] = await sdk_frames(send, vertexai=vertexai)
    events = client_events(parse_client_message(frame))
    if expected:
        assert events == expected
    else:
        [event] = events
        assert isinstance(event, ContextChange)
        assert set(json.loads(frame)["contextUpdate"]) == {to_camel(name) for name in event.update.model_fields_set}


@pytest.mark.parametrize(("send", "expected"), [case[1:] for case in CLIENT_CORPUS], ids=[c[0] for c in CLIENT_CORPUS])
async def test_every_event_reaches_gemini_with_its_meaning_kept(send: Send, expected: list[ClientEvent]) -> None:
    [frame] = await sdk_frames(send)
    events = client_events(parse_client_message(frame))
    for event in events:
        if isinstance(event, AudioChunk) and event.sample_rate != 16000:
            continue  # the session resamples to 16 kHz before a backend sees it
        [upstream] = await sdk_frames(lambda s, e=event: forward(s, e))  # type: ignore[misc]
        assert client_events(parse_client_message(upstream)) == [event]


def to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


# Every message kind of the Live API's server side, as this server writes it.
SERVER_CORPUS: list[tuple[str, ServerMessage]] = [
    ("setup-complete", ServerMessage(setup_complete=SetupComplete(session_id="s1"))),
    ("model-audio", ServerMessage.model_audio(PCM)),
    ("model-text", ServerMessage.model_text("Hi")),
    ("input-transcription", ServerMessage.input_transcript("what time", finished=True)),
    ("output-transcription", ServerMessage.output_transcript("It is noon.")),
    (
        "multi-part",
        ServerMessage(
            server_content=ServerContent(
                model_turn=Content(
                    role="model", parts=[Part(inline_data=Blob(data=PCM, mime_type="audio/pcm;rate=24000"))]
                ),
                output_transcription=Transcription(text="It is"),
                turn_complete=True,
                turn_complete_reason="TURN_COMPLETE_REASON_UNSPECIFIED",
                waiting_for_input=True,
            )
        ),
    ),
    ("interrupted", ServerMessage.interrupted_turn()),
    ("generation-complete", ServerMessage.generation_done()),
    ("turn-complete-with-usage", ServerMessage.turn_done(UsageMetadata(prompt_token_count=3, total_token_count=5))),
    (
        "turn-complete-needs-input",
        ServerMessage.turn_done(
            UsageMetadata(prompt_token_count=3, response_token_count=2, total_token_count=5), "NEED_MORE_INPUT"
        ),
    ),
    ("voice-activity", ServerMessage(voice_activity=VoiceActivity(type="ACTIVITY_START", audio_offset="1.5s"))),
    (
        "vad-signal",
        ServerMessage(voice_activity_detection_signal=VoiceActivityDetectionSignal(vad_signal_type="VAD_SIGNAL_TYPE_EOS")),
    ),
    ("tool-call", ServerMessage.calls([FunctionCall(id="1", name="f", args={"room_name": "x"})])),
    ("tool-call-cancellation", ServerMessage(tool_call_cancellation=ToolCallCancellation(ids=["1", "2"]))),
    ("go-away", ServerMessage(go_away=GoAway.after(5))),
    (
        "session-resumption-update",
        ServerMessage(session_resumption_update=SessionResumptionUpdate(new_handle="h", resumable=True)),
    ),
    ("not-resumable", ServerMessage(session_resumption_update=SessionResumptionUpdate(resumable=False))),
]


def sdk_reads(frame: bytes) -> types.LiveServerMessage:
    """The SDK's reading of one server frame, as ``AsyncSession._receive`` does it."""
    from google.genai import _live_converters

    response = _live_converters._LiveServerMessage_from_mldev(json.loads(frame))
    return types.LiveServerMessage._from_response(response=response, kwargs={})


@pytest.mark.parametrize("message", [case[1] for case in SERVER_CORPUS], ids=[case[0] for case in SERVER_CORPUS])
def test_every_server_message_kind_reads_back_in_the_sdk(message: ServerMessage) -> None:
    frame = encode_message(message)
    read: dict[str, Any] = sdk_reads(frame).model_dump(mode="json", by_alias=True, exclude_none=True)
    assert ServerMessage.model_validate(read) == message


def every_setup_field() -> types.LiveConnectConfig:
    """A LiveConnectConfig with every field the Gemini API conversion writes into ``setup``."""
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        temperature=0.4,
        top_p=0.9,
        top_k=20,
        max_output_tokens=256,
        media_resolution=types.MediaResolution.MEDIA_RESOLUTION_LOW,
        seed=7,
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Kore")),
            language_code="en-US",
        ),
        thinking_config=types.ThinkingConfig(thinking_budget=128, include_thoughts=True),
        enable_affective_dialog=True,
        system_instruction="Be brief.",
        tools=[
            LIGHTS,
            types.Tool(google_search=types.GoogleSearch()),
            types.Tool(code_execution=types.ToolCodeExecution()),
            types.Tool(url_context=types.UrlContext()),
        ],
        session_resumption=types.SessionResumptionConfig(),
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        realtime_input_config=types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(
                disabled=False,
                start_of_speech_sensitivity=types.StartSensitivity.START_SENSITIVITY_LOW,
                end_of_speech_sensitivity=types.EndSensitivity.END_SENSITIVITY_LOW,
                prefix_padding_ms=20,
                silence_duration_ms=300,
            ),
            activity_handling=types.ActivityHandling.NO_INTERRUPTION,
            turn_coverage=types.TurnCoverage.TURN_INCLUDES_ALL_INPUT,
        ),
        context_window_compression=types.ContextWindowCompressionConfig(
            trigger_tokens=1000, sliding_window=types.SlidingWindow(target_tokens=500)
        ),
        proactivity=types.ProactivityConfig(proactive_audio=True),
        history_config=types.HistoryConfig(initial_history_in_client_content=True),
        safety_settings=[
            types.SafetySetting(
                category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
                threshold=types.HarmBlockThreshold.BLOCK_ONLY_HIGH,
            )
        ],
    )


async def test_every_setup_field_the_sdk_writes_reaches_the_backend(
    live_server: ServerFactory, tls_certificate: Certificate
) -> None:
    seen: list[Setup] = []

    async def record(s: ScriptedSession) -> None:
        seen.append(s.request.setup)
        await s.closed.wait()

    async with live_server(
        ScriptedBackend(record), tls_cert=tls_certificate.cert, tls_key=tls_certificate.key
    ) as server:
        client = sdk_client(server.port, tls_certificate)
        async with client.aio.live.connect(model="gemini-3.8-live", config=every_setup_field()) as session:
            assert session.session_id
    [setup] = seen
    assert setup.model == "models/gemini-3.8-live"
    assert setup.model_fields_set >= {
        "model",
        "generation_config",
        "system_instruction",
        "tools",
        "realtime_input_config",
        "session_resumption",
        "context_window_compression",
        "input_audio_transcription",
        "output_audio_transcription",
        "proactivity",
        "history_config",
        "safety_settings",
    }
    generation = setup.generation_config
    assert generation is not None
    assert (generation.temperature, generation.top_p, generation.top_k, generation.seed) == (0.4, 0.9, 20, 7)
    assert generation.max_output_tokens == 256 and generation.media_resolution == "MEDIA_RESOLUTION_LOW"
    assert generation.thinking_config == {"include_thoughts": True, "thinking_budget": 128}
    assert generation.enable_affective_dialog and setup.voice_name() == "Kore"
    assert [d.name for d in setup.function_declarations()] == ["turn_on_lights"]
    assert setup.tools is not None
    assert sorted(name for tool in setup.tools for name in tool.model_fields_set) == [
        "code_execution",
        "function_declarations",
        "google_search",
        "url_context",
    ]
    detection = setup.realtime_input_config.automatic_activity_detection  # type: ignore[union-attr]
    assert detection is not None and detection.silence_duration_ms == 300
    assert setup.proactivity is not None and setup.proactivity.proactive_audio
