"""The Gemini backend's parts, one at a time: no sockets, no clock but an injected one."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json

import pytest
from google.genai import Client, _common, errors, types
from google.genai import _live_converters as live_converters
from google.genai.live import _t_live_connect_config
from hypothesis import given
from hypothesis import strategies as st
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from assistant.backends.gemini import create_backend, settings_from_args
from assistant.backends.gemini.convert import connect_config, from_sdk_message, text_history, upstream_model
from assistant.backends.gemini.frames import JITTER_SLACK, FrameLimiter
from assistant.backends.gemini.options import DEFAULT_MODEL, DEFAULT_VERTEX_MODEL, GeminiSettings, add_arguments
from assistant.backends.gemini.replay import ReplayBuffer
from assistant.backends.gemini.stream import duration_seconds
from assistant.backends.gemini.upstream import classify
from assistant.cli import main
from assistant.protocol import (
    AudioChunk,
    ClientTurns,
    Content,
    Part,
    Setup,
    TextInput,
    ToolResponses,
    VideoFrame,
    encode_message,
)

SETTINGS = GeminiSettings()


def upstream_setup(setup: Setup, settings: GeminiSettings = SETTINGS, handle: str | None = None) -> dict[str, object]:
    """The setup JSON the SDK sends Gemini for ``setup``, built by the SDK's own converters."""
    client = Client(api_key="k", http_options=types.HttpOptions(api_version="v1beta"))
    config = asyncio.run(_t_live_connect_config(client._api_client, connect_config(setup, settings, handle)))
    parameters = types.LiveConnectParameters(model=f"models/{upstream_model(setup, settings)}", config=config)
    request = live_converters._LiveConnectParameters_to_mldev(
        api_client=client._api_client, from_object=parameters.model_dump(exclude_none=True)
    )
    request = _common.encode_unserializable_types(_common.convert_to_dict(request))
    request.pop("config", None)
    setup_json: dict[str, object] = request["setup"]
    return setup_json


# -- setup ---------------------------------------------------------------------------


def test_defaults_fill_only_what_the_client_left_out() -> None:
    bare = upstream_setup(Setup(model="models/gemini-x"))
    assert bare["generationConfig"] == {
        "responseModalities": ["AUDIO"],
        "speechConfig": {"voice_config": {"prebuilt_voice_config": {"voice_name": "Puck"}}},
    }
    assert bare["inputAudioTranscription"] == {} and bare["outputAudioTranscription"] == {}
    assert bare["contextWindowCompression"] == {"sliding_window": {}}
    assert bare["sessionResumption"] == {}

    chosen = Setup.model_validate(
        {
            "model": "gemini-x",
            "generationConfig": {
                "responseModalities": ["TEXT"],
                "speechConfig": {"languageCode": "de-DE"},
            },
            "contextWindowCompression": {"triggerTokens": 5000, "slidingWindow": {"targetTokens": 1000}},
            "sessionResumption": {"handle": "the-sessions-own-handle"},
        }
    )
    sent = upstream_setup(chosen, handle="geminis-handle")
    assert sent["generationConfig"] == {
        "responseModalities": ["TEXT"],
        "speechConfig": {"language_code": "de-DE"},  # no voice for a text reply
    }
    assert "outputAudioTranscription" not in sent and sent["inputAudioTranscription"] == {}
    assert sent["contextWindowCompression"] == {"trigger_tokens": 5000, "sliding_window": {"target_tokens": 1000}}
    assert sent["sessionResumption"] == {"handle": "geminis-handle"}

    quiet = upstream_setup(Setup(model="m"), GeminiSettings(context_compression=False, voice="Kore"))
    assert "contextWindowCompression" not in quiet
    assert "Kore" in json.dumps(quiet["generationConfig"])


def test_generation_fields_without_a_flat_twin_still_reach_gemini() -> None:
    setup = Setup.model_validate(
        {
            "model": "m",
            "generationConfig": {"temperature": 0.2, "presencePenalty": 0.5, "stopSequences": ["bye"], "topK": 3},
        }
    )
    with pytest.warns(DeprecationWarning, match="generation_config"):  # the SDK's, for its own API surface
        generation = upstream_setup(setup)["generationConfig"]
    assert isinstance(generation, dict)
    assert (generation["temperature"], generation["topK"]) == (0.2, 3)
    assert (generation["presence_penalty"], generation["stop_sequences"]) == (0.5, ["bye"])


def test_the_model_is_the_servers_the_clients_or_the_default() -> None:
    assert upstream_model(Setup(model="models/gemini-live-x"), SETTINGS) == "gemini-live-x"
    assert upstream_model(Setup(model="gemini-live-x"), SETTINGS) == "gemini-live-x"
    assert upstream_model(Setup(model=""), SETTINGS) == DEFAULT_MODEL
    assert upstream_model(Setup(model="models/"), GeminiSettings(vertex=True)) == DEFAULT_VERTEX_MODEL
    assert upstream_model(Setup(model="gemini-live-x"), GeminiSettings(model="models/forced")) == "forced"


def test_history_is_re_seeded_as_text_only() -> None:
    history = [
        Content(role="user", parts=[Part(text="lights on")]),
        Content.model_validate({"role": "model", "parts": [{"functionCall": {"id": "1", "name": "lights"}}]}),
        Content.model_validate({"role": "user", "parts": [{"functionResponse": {"id": "1", "response": {}}}]}),
        Content(role="model", parts=[Part(text="Done.")]),
    ]
    assert [(turn.role, turn.parts[0].text) for turn in text_history(history)] == [
        ("user", "lights on"),
        ("model", "Done."),
    ]


# -- server messages ---------------------------------------------------------------------


def test_server_messages_keep_their_bytes_and_casing_through_the_sdk() -> None:
    audio = bytes(range(256)) * 4  # '+' and '/' in standard base64
    wire = {
        "serverContent": {
            "modelTurn": {
                "role": "model",
                "parts": [
                    {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(audio).decode()}},
                    {"text": "hi", "thoughtSignature": base64.b64encode(b"\xfb\xff\xfe").decode()},
                ],
            },
            "groundingMetadata": {"webSearchQueries": ["q"], "groundingChunks": [{"web": {"uri": "u", "title": "t"}}]},
            "outputTranscription": {"text": "hi"},
            "turnCompleteReason": "NEED_MORE_INPUT",
        },
        "toolCall": {"functionCalls": [{"id": "c1", "name": "f", "args": {"room_name": "hall", "lightLevel": 3}}]},
        "usageMetadata": {"promptTokenCount": 3, "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 3}]},
    }
    received = types.LiveServerMessage._from_response(
        response=live_converters._LiveServerMessage_from_mldev(wire), kwargs={}
    )
    message = from_sdk_message(received)
    assert message.audio_parts()[0].data == audio
    assert json.loads(encode_message(message)) == wire


@pytest.mark.parametrize(
    "wire",
    [
        {"voiceActivity": {"type": "ACTIVITY_END", "audioOffset": "2.5s"}},
        {"voiceActivityDetectionSignal": {"vadSignalType": "VAD_SIGNAL_TYPE_SOS"}},
    ],
)
def test_gemini_voice_activity_reaches_the_client_as_gemini_wrote_it(wire: dict[str, object]) -> None:
    """The SDK reads voiceActivity.type as voice_activity_type; relayed, it is "type" on the wire again."""
    received = types.LiveServerMessage._from_response(
        response=live_converters._LiveServerMessage_from_mldev(wire), kwargs={}
    )
    assert json.loads(encode_message(from_sdk_message(received))) == wire


def test_a_server_field_a_newer_sdk_knows_is_dropped_not_the_message() -> None:
    class NewerSdkMessage:
        def model_dump(self, **options: object) -> dict[str, object]:
            return {"serverContent": {"turnComplete": True, "brandNewField": {"x": 1}}, "alsoNew": 1}

    message = from_sdk_message(NewerSdkMessage())  # type: ignore[arg-type]
    assert json.loads(encode_message(message)) == {"serverContent": {"turnComplete": True}}


# -- frames ---------------------------------------------------------------------------------


def frame(n: int) -> VideoFrame:
    return VideoFrame(image=b"\xff\xd8\xff" + n.to_bytes(4, "big"))


def test_frames_above_the_cap_are_dropped_but_a_jittery_1_fps_client_keeps_every_frame() -> None:
    now = [0.0]
    limiter = FrameLimiter(1.0, clock=lambda: now[0])
    admitted = []
    for n, t in enumerate([0.0, 0.97, 2.02, 2.95, 4.0, 5.04]):  # 1 fps with timer jitter
        now[0] = t
        admitted.append(limiter.admit(frame(n)))
    assert all(admitted)

    fast = FrameLimiter(1.0, clock=lambda: now[0])
    kept = []
    for n in range(50):  # 10 fps for 5 s
        now[0] = n / 10
        if fast.admit(frame(n)):
            kept.append(now[0])
    # One a second on a grid; a frame within the jitter allowance of its slot counts as on time.
    assert kept == [0.0, 0.9, 1.9, 2.9, 3.9, 4.9] and fast.dropped == 44


def test_a_frame_that_did_not_change_is_not_sent_again() -> None:
    now = [0.0]
    limiter = FrameLimiter(1.0, clock=lambda: now[0])
    assert limiter.admit(frame(1))
    now[0] = 5.0
    assert not limiter.admit(frame(1))
    assert limiter.admit(frame(2))
    gate_calls: list[tuple[bytes, bytes]] = []

    def never_changed(previous: VideoFrame, new: VideoFrame) -> bool:
        gate_calls.append((previous.image, new.image))
        return False

    gated = FrameLimiter(1.0, clock=lambda: now[0], changed=never_changed)
    assert gated.admit(frame(1))  # the first frame is always news
    now[0] = 10.0
    assert not gated.admit(frame(2)) and gate_calls == [(frame(1).image, frame(2).image)]


@given(st.lists(st.floats(min_value=0, max_value=60), max_size=300), st.sampled_from([0.5, 1.0, 2.0, 5.0]))
def test_the_cap_holds_over_any_window_of_arrivals(arrivals: list[float], fps: float) -> None:
    now = [0.0]
    limiter = FrameLimiter(fps, clock=lambda: now[0])
    sent = []
    for n, t in enumerate(sorted(arrivals)):
        now[0] = t
        if limiter.admit(frame(n)):
            sent.append(t)
    interval = 1 / fps
    for first in range(len(sent)):
        for last in range(first + 1, len(sent)):
            # n frames need at least (n - 1) intervals, less one jitter allowance.
            assert sent[last] - sent[first] >= (last - first) * interval - JITTER_SLACK * interval - 1e-9


# -- replay ------------------------------------------------------------------------------------


def chunk(n: int, seconds: float = 0.02) -> AudioChunk:
    return AudioChunk(pcm=bytes([n]) * int(seconds * 32_000))


def test_replay_keeps_what_followed_the_handle_or_the_turn() -> None:
    buffer = ReplayBuffer(max_audio_s=10)
    buffer.add(chunk(1))
    buffer.turn_completed()
    buffer.add(TextInput("two"))
    buffer.add(ToolResponses([]))  # answers a call of a connection that will be gone: never replayed
    buffer.add(frame(1))  # frames are not kept; the newest is sent on its own
    assert buffer.since_turn() == [TextInput("two")] and buffer.since_handle() == [TextInput("two")]
    buffer.handle_issued()
    buffer.add(chunk(3))
    assert buffer.since_handle() == [chunk(3)]
    assert buffer.since_turn() == [TextInput("two"), chunk(3)]
    buffer.turn_completed()
    buffer.add(ClientTurns([], turn_complete=True))
    assert buffer.since_turn() == [ClientTurns([], turn_complete=True)]
    assert buffer.since_handle() == [chunk(3), ClientTurns([], turn_complete=True)]


def test_replay_audio_is_bounded_to_the_newest_seconds() -> None:
    buffer = ReplayBuffer(max_audio_s=1.0)
    for n in range(100):  # 2 s of 20 ms chunks, no turn ever completes
        buffer.add(chunk(n))
    kept = buffer.since_turn()
    assert kept == [chunk(n) for n in range(50, 100)]
    assert buffer.dropped_audio_s == pytest.approx(1.0)


# -- failures, durations, options ---------------------------------------------------------------


def test_failures_are_sorted_into_retry_or_give_up() -> None:
    bad_key = classify(errors.APIError(1007, "API key not valid. Please pass a valid API key."))
    assert (bad_key.code, bad_key.fatal, bad_key.reason) == (
        1007,
        True,
        "API key not valid. Please pass a valid API key.",
    )
    assert classify(errors.APIError(1008, "models/x is not found")).fatal
    assert not classify(errors.APIError(1011, "Internal error encountered.")).fatal
    assert not classify(errors.APIError(1006, "Abnormal closure.")).fatal
    assert not classify(errors.APIError(1000, "")).fatal  # Gemini closed after its deadline: resume
    assert not classify(ConnectionRefusedError(111, "Connection refused")).fatal
    assert not classify(TimeoutError()).fatal
    assert classify(ValueError("explicit_vad_signal parameter is only supported ...")).code == 1007

    def status(code: int) -> InvalidStatus:
        return InvalidStatus(Response(code, "x", Headers()))

    assert classify(status(404)).fatal and classify(status(403)).fatal
    assert not classify(status(503)).fatal and not classify(status(429)).fatal


def test_go_away_durations() -> None:
    assert duration_seconds("50s") == 50.0
    assert duration_seconds("0.25s") == 0.25
    assert duration_seconds(None) == 0.0
    assert duration_seconds("soon") == 0.0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_options_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project")
    monkeypatch.delenv("GOOGLE_CLOUD_LOCATION", raising=False)
    monkeypatch.delenv("GOOGLE_GENAI_API_VERSION", raising=False)
    backend = create_backend(settings_from_args(parse(["--gemini-max-fps", "2"])))
    assert backend.settings.vertex and backend.settings.project == "my-project"
    assert backend.settings.location == "us-central1" and backend.settings.max_fps == 2.0
    assert backend.client.vertexai and backend.settings.resolved_api_version == "v1"

    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI")
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    options = parse(["--gemini-base-url", "https://proxy.example", "--gemini-voice", "Kore"])
    developer = create_backend(settings_from_args(options))
    assert not developer.client.vertexai and developer.settings.resolved_api_version == "v1beta"
    assert developer.client._api_client._http_options.base_url == "https://proxy.example"
    with pytest.raises(ValueError, match="--gemini-max-fps must be positive"):
        settings_from_args(parse(["--gemini-max-fps", "0"]))


def test_serve_without_a_key_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(name, raising=False)
    status = main(["serve", "--backend", "gemini", "--port", "0", "--resumption-store", "memory"])
    assert status == 2
    assert "No API key was provided" in capsys.readouterr().err
