"""Server events and the codec at the edge: what each event is on the wire, and audio that is never decoded."""

from __future__ import annotations

import base64
import json

import orjson
import pytest
from google.genai import errors

from assistant.backends.gemini.convert import audio_frame, upstream_events
from assistant.protocol import (
    AudioChunk,
    ContentMetadata,
    FunctionCall,
    GenerationComplete,
    GoingAway,
    InputTranscript,
    Interrupted,
    OutputTranscript,
    Part,
    ProtocolError,
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
    UsageMetadata,
    VadSignal,
    VideoFrame,
    VoiceActivityEvent,
    client_events,
    decode_client_frame,
    decode_server_message,
    encode_event,
    server_events,
)
from assistant.protocol.models import ServerToolActivity
from assistant.protocol.server_events import base64_size
from tests.test_sdk_corpus import sdk_reads

PCM = bytes(range(256)) * 4  # 1024 bytes: both base64 alphabets differ on it
STANDARD = base64.b64encode(PCM).decode()
URLSAFE = base64.urlsafe_b64encode(PCM).decode()
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60

EVENTS: list[ServerEvent] = [
    ReplyAudio(STANDARD),
    ReplyAudio(STANDARD, "audio/pcm;rate=16000"),
    ReplyText("Hello"),
    ReplyParts([Part(text="thinking", thought=True)]),
    InputTranscript("what time"),
    InputTranscript("is it", finished=True, language_code="en-US"),
    OutputTranscript("It is noon."),
    OutputTranscript("Hi", extra={"startOffset": "0.5s", "speakerLabel": "model"}),
    Interrupted(),
    GenerationComplete(),
    TurnComplete(),
    TurnComplete("NEED_MORE_INPUT", UsageMetadata(prompt_token_count=3, total_token_count=5), True),
    ContentMetadata({"groundingMetadata": {"webSearchQueries": ["noon"]}}),
    ToolCalls([FunctionCall(id="c1", name="get_time", args={"city_name": "Paris"})]),
    ToolCancellation(["c1", "c2"]),
    GoingAway("5s"),
    Usage(UsageMetadata(response_token_count=7)),
    VoiceActivityEvent("ACTIVITY_START", "1.5s"),
    VadSignal("VAD_SIGNAL_TYPE_EOS"),
    ResumptionUpdate("handle-1", True),
    ResumptionUpdate(resumable=False),
    SetupDone("abc123"),
    ToolActivity(ServerToolActivity(id="s1", name="clock", state="running", args={})),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: type(event).__name__)
def test_every_event_is_one_wire_message_that_reads_back_as_itself(event: ServerEvent) -> None:
    frame = encode_event(event)
    assert server_events(decode_server_message(frame)) == [event]
    if not isinstance(event, ToolActivity):  # the project's opt-in extension, which the SDK does not know
        assert sdk_reads(frame).model_dump(exclude_none=True)  # the SDK takes it too


def test_reply_audio_is_sent_as_the_text_it_came_in_and_weighed_without_decoding() -> None:
    audio = ReplyAudio(STANDARD)
    assert json.loads(encode_event(audio))["serverContent"]["modelTurn"]["parts"][0]["inlineData"]["data"] == STANDARD
    assert audio.pcm == PCM and audio.sample_rate == 24_000
    assert audio.duration_s == pytest.approx(len(PCM) / 2 / 24_000)
    for size in range(0, 9):
        assert base64_size(base64.b64encode(b"x" * size).decode()) == size


def chunk_frame(data: str, mime: str = "audio/pcm;rate=16000", legacy: bool = False) -> bytes:
    blob = {"data": data, "mimeType": mime}
    realtime = {"mediaChunks": [blob]} if legacy else {"audio": blob}
    return orjson.dumps({"realtimeInput": realtime})


@pytest.mark.parametrize("legacy", [False, True], ids=["audio", "mediaChunks"])
@pytest.mark.parametrize("text", [STANDARD, URLSAFE], ids=["standard", "urlsafe"])
def test_a_microphone_chunk_keeps_its_base64_text(text: str, legacy: bool) -> None:
    chunk = decode_client_frame(chunk_frame(text, "audio/pcm;rate=24000", legacy))
    assert isinstance(chunk, AudioChunk)
    assert chunk.base64 is text or chunk.base64 == text  # the text as it came, not re-encoded
    assert chunk.sample_rate == 24_000 and chunk.nbytes == len(PCM)
    assert chunk.pcm == PCM
    assert chunk == AudioChunk(PCM, 24_000)
    # Gemini gets the same text, in the project's own JSON.
    sent = {"realtimeInput": {"audio": {"data": text, "mimeType": "audio/pcm;rate=16000"}}}
    assert orjson.loads(audio_frame(chunk)) == sent


def test_chunks_the_fast_path_does_not_take_are_checked_as_before() -> None:
    unpadded = decode_client_frame(chunk_frame(STANDARD.rstrip("=")))  # valid, spelled without padding
    assert not isinstance(unpadded, AudioChunk) and client_events(unpadded) == [AudioChunk(PCM)]
    odd = decode_client_frame(chunk_frame(base64.b64encode(b"abc").decode()))
    assert not isinstance(odd, AudioChunk)
    with pytest.raises(ProtocolError, match="whole number of 16-bit samples"):
        client_events(odd)
    with pytest.raises(ProtocolError, match=r"realtimeInput\.audio\.data: data is not valid base64"):
        decode_client_frame(chunk_frame("!!!!"))
    with pytest.raises(ProtocolError, match=r"realtimeInput\.mediaChunks\[0\]: mimeType audio/opus is not supported"):
        decode_client_frame(chunk_frame(STANDARD, "audio/opus", legacy=True))
    image = decode_client_frame(chunk_frame(base64.b64encode(JPEG).decode(), "image/jpeg", legacy=True))
    assert not isinstance(image, AudioChunk) and client_events(image) == [VideoFrame(JPEG)]


def test_a_gemini_frame_yields_its_audio_untouched_then_the_rest() -> None:
    frame = orjson.dumps(
        {
            "serverContent": {
                "modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": STANDARD}}]},
                "outputTranscription": {"text": "Hel"},
                "turnComplete": True,
            },
            "usageMetadata": {"totalTokenCount": 9},
        }
    )
    events = upstream_events(frame, vertexai=False)
    assert events == [
        ReplyAudio(STANDARD),
        OutputTranscript("Hel"),
        TurnComplete(usage=UsageMetadata(total_token_count=9)),
    ]
    urlsafe = orjson.dumps(
        {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm", "data": URLSAFE}}]}}}
    )
    assert upstream_events(urlsafe, vertexai=False) == [ReplyAudio(STANDARD, "audio/pcm")]  # browsers' atob
    with pytest.raises(errors.APIError):
        upstream_events(orjson.dumps({"code": 3, "message": "bad"}), vertexai=False)
