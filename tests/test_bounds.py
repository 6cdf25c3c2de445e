"""Every buffer a client can fill is bounded in bytes, and failures close with the project's words.

Queues, the conversation kept for resumption, the Gemini backend's replay,
decoded images and resamplers each have a cap a hostile client cannot pass;
a close reason never carries a library's exception text, only an error id
that the server log repeats next to the details.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import logging
import re
import ssl
import struct
import weakref
import zlib
from typing import Literal

import pytest
from google.auth.exceptions import DefaultCredentialsError
from google.genai import errors
from websockets.exceptions import ConnectionClosedError
from websockets.frames import Close

from assistant.backends.gemini.replay import ReplayBuffer
from assistant.backends.gemini.upstream import classify
from assistant.cli import serve as serve_cli
from assistant.protocol import (
    AudioChunk,
    ClientTurns,
    CloseCode,
    Content,
    FunctionCall,
    FunctionResponse,
    InputTranscript,
    OutputTranscript,
    Part,
    ProtocolError,
    ServerMessage,
    TextInput,
    ToolCalls,
    ToolResponses,
    TurnComplete,
)
from assistant.protocol.errors import MAX_CLOSE_REASON_BYTES
from assistant.session import BackendError, MemoryResumptionStore, SessionSettings
from assistant.session import core as core_module
from assistant.session.history import ConversationLog
from assistant.session.limits import ImageTooLarge, approx_bytes, check_image_pixels
from assistant.session.queues import FlowQueue
from tests.support.scripted import ScriptedSession, idle
from tests.test_session import RESUMABLE_SETUP, running

ERROR_ID = re.compile(r"\(error (e-[0-9a-f]{6}); see the server log\)$")


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels: signature, IHDR and an empty IDAT, no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


# -- queues ----------------------------------------------------------------------------------------


class TestQueueBytes:
    async def test_meaning_waits_once_the_byte_budget_is_spent(self) -> None:
        queue: FlowQueue[bytes] = FlowQueue(100, max_bytes=10, size=len)
        await queue.put(b"x" * 6)
        blocked = asyncio.create_task(queue.put(b"y" * 6))
        await asyncio.sleep(0)
        assert not blocked.done() and queue.bytes == 6
        assert await queue.get() == b"x" * 6
        await blocked
        assert queue.bytes == 6 and queue.high_water_bytes == 6

    async def test_media_gives_way_until_the_newcomer_fits(self) -> None:
        queue: FlowQueue[bytes] = FlowQueue(100, kind=lambda item: "audio", max_bytes=10, size=len)
        for _ in range(4):
            await queue.put(b"a" * 2, droppable=True)
        await queue.put(b"m" * 2)
        await queue.put(b"c" * 6)  # 10 queued: three audio items must go, the message stays
        assert queue.dropped == {"audio": 3}
        assert [await queue.get() for _ in range(3)] == [b"aa", b"mm", b"c" * 6]
        assert queue.bytes == 0

    async def test_an_item_larger_than_the_budget_enters_an_empty_queue(self) -> None:
        queue: FlowQueue[bytes] = FlowQueue(100, max_bytes=10, size=len)
        await asyncio.wait_for(queue.put(b"z" * 50), 1)
        blocked = asyncio.create_task(queue.put(b"a"))
        await asyncio.sleep(0)
        assert not blocked.done()  # nothing else joins it while it is over budget
        assert await queue.get() == b"z" * 50
        await asyncio.wait_for(blocked, 1)

    async def test_discard_gives_back_the_bytes(self) -> None:
        queue: FlowQueue[bytes] = FlowQueue(100, max_bytes=100, size=len)
        for item in (b"a" * 10, b"t" * 3, b"a" * 20):
            await queue.put(item, droppable=item.startswith(b"a"))
        assert queue.discard(lambda item: item.startswith(b"a")) == 2
        assert queue.bytes == 3


def test_weights_count_payload_and_survive_deep_nesting() -> None:
    chunk = AudioChunk(pcm=b"\x00" * 64_000)
    assert 64_000 <= approx_bytes(chunk) <= 64_000 + 1_000
    audio = ServerMessage.model_audio(b"\x00" * 48_000)
    assert 48_000 <= approx_bytes(audio) <= 48_000 + 2_000
    turn = ClientTurns([Content(role="user", parts=[Part(text="x" * 100_000)])])
    assert approx_bytes(turn) >= 100_000
    nested: dict[str, object] = {}
    for _ in range(100_000):  # far deeper than the interpreter's recursion limit
        nested = {"a": nested}
    response = FunctionResponse.model_construct(id="1", name="f", response=nested)
    assert approx_bytes(ToolResponses([response])) > 100_000


# -- the conversation kept for resumption ----------------------------------------------------------


def text_turn(role: Literal["user", "model"], size: int, tag: str) -> Content:
    return Content(role=role, parts=[Part(text=tag + "x" * size)])


def test_history_drops_the_oldest_turns_past_its_byte_cap() -> None:
    log = ConversationLog(max_bytes=50_000)
    for index in range(20):
        log.client_event(ClientTurns([text_turn("user", 10_000, f"u{index}")]))
        log.server_event(OutputTranscript(f"m{index}" + "y" * 5_000))
    log.server_event(TurnComplete())
    assert log.bytes <= 50_000
    texts = [turn.text()[:3] for turn in log.turns]
    assert texts[-2:] == ["u19", "m19"]
    assert log.turns[0].role == "user"  # the kept history starts where a user turn starts
    assert log.dropped_turns >= 30


def test_a_turn_larger_than_the_cap_is_not_kept_and_tool_results_do_not_start_the_history() -> None:
    log = ConversationLog(max_bytes=20_000)
    log.client_event(ClientTurns([text_turn("user", 4 * 1024 * 1024, "huge")]))
    assert log.turns == [] and log.bytes == 0
    log.client_event(TextInput("short question"))
    log.server_event(ToolCalls([FunctionCall(id="1", name="f")]))
    log.tool_results([FunctionResponse(id="1", name="f", response={"output": "z" * 15_000})])
    # The call was dropped to make room; its result alone would start the history with an answer to nothing.
    assert all(turn.parts[0].function_response is None for turn in log.turns[:1])


def test_text_being_joined_keeps_its_newest_part_and_snapshot_is_capped() -> None:
    log = ConversationLog(max_bytes=30_000)
    for index in range(100):  # transcription fragments that never finish
        log.server_event(InputTranscript(f"<{index}>" + "w" * 1_000))
    snapshot = log.snapshot()
    assert len(snapshot) == 1 and approx_bytes(snapshot[0]) <= 30_000 + 1_000
    assert snapshot[0].text().endswith("<99>" + "w" * 1_000)


def test_resumed_history_is_capped_too() -> None:
    history = [text_turn("user" if n % 2 == 0 else "model", 10_000, str(n)) for n in range(40)]
    log = ConversationLog(history, max_bytes=45_000)
    assert log.bytes <= 45_000 and log.turns[-1].text().startswith("39")


def test_gemini_replay_keeps_text_within_its_bytes() -> None:
    buffer = ReplayBuffer(max_audio_s=30.0, max_bytes=100_000)
    for index in range(25):  # 25 x 40 kB of clientContent and no turn ever ends
        buffer.add(ClientTurns([text_turn("user", 40_000, f"t{index:02}")]))
    kept = buffer.since_turn()
    assert sum(approx_bytes(event) for event in kept) <= 100_000
    assert isinstance(kept[-1], ClientTurns) and kept[-1].turns[0].text().startswith("t24")
    assert buffer.dropped_inputs == 25 - len(kept)


async def test_the_saved_history_is_capped_in_the_store() -> None:
    store = MemoryResumptionStore()

    async def script(s: ScriptedSession) -> None:
        for _ in range(10):
            await s.expect(ClientTurns)
        await s.expect(TextInput)
        s.emit(OutputTranscript("done"), TurnComplete())

    settings = SessionSettings(history_bytes=100_000)
    async with running(script, setup=RESUMABLE_SETUP, store=store, settings=settings) as (client, _, _):
        for index in range(10):
            turns = [{"role": "user", "parts": [{"text": f"t{index}" + "x" * 40_000}]}]
            await client.send({"clientContent": {"turns": turns, "turnComplete": False}})
        await client.send({"realtimeInput": {"text": "and now?"}})
        while (update := (await client.recv()).session_resumption_update) is None:
            pass
        saved = await store.load(update.new_handle or "")
    assert saved is not None
    assert len(json.dumps(saved.history)) <= 100_000
    assert [turn["parts"][0]["text"][:2] for turn in saved.history] == ["t8", "t9", "an", "do"]


# -- resamplers --------------------------------------------------------------------------------------


async def test_a_client_changing_rates_holds_one_resampler(monkeypatch: pytest.MonkeyPatch) -> None:
    alive: weakref.WeakSet[object] = weakref.WeakSet()
    real = core_module.StreamResampler

    class Counted(real):  # type: ignore[misc, valid-type]
        def __init__(self, in_rate: int, out_rate: int) -> None:
            super().__init__(in_rate, out_rate)
            alive.add(self)

    monkeypatch.setattr(core_module, "StreamResampler", Counted)
    rates = list(range(8_000, 96_001, 4_000))

    async def script(s: ScriptedSession) -> None:
        await s.expect(TextInput)
        gc.collect()
        assert len(alive) <= 1
        s.emit(TurnComplete())

    async with running(script) as (client, _, _):
        for rate in rates:
            pcm = base64.b64encode(b"\x10\x00" * (rate // 50)).decode()
            await client.send({"realtimeInput": {"audio": {"data": pcm, "mimeType": f"audio/pcm;rate={rate}"}}})
        await client.send({"realtimeInput": {"text": "done"}})
        assert (await client.recv()).is_turn_complete


# -- images ------------------------------------------------------------------------------------------


def test_image_size_comes_from_the_header() -> None:
    assert check_image_pixels(png_header(640, 480), 640 * 480) == (640, 480)
    with pytest.raises(ImageTooLarge, match="641x480 pixels"):
        check_image_pixels(png_header(641, 480), 640 * 480)
    with pytest.raises(ImageTooLarge, match="over 178956970 pixels"):  # past Pillow's decompression-bomb guard
        check_image_pixels(png_header(60_000, 60_000), 10**6)
    assert check_image_pixels(b"not an image at all", 10) is None


def image(data: str) -> dict[str, str]:
    return {"data": data, "mimeType": "image/png"}


@pytest.mark.parametrize(
    ("message", "where"),
    [
        (lambda data: {"realtimeInput": {"video": image(data)}}, "realtimeInput.video"),
        (
            lambda data: {"clientContent": {"turns": [{"role": "user", "parts": [{"inlineData": image(data)}]}]}},
            "clientContent.turns[0].parts[0].inlineData",
        ),
    ],
)
async def test_an_image_over_the_pixel_cap_closes_1009(message: object, where: str) -> None:
    settings = SessionSettings(max_image_pixels=1_000_000)
    small, large = (base64.b64encode(png_header(*size)).decode() for size in ((1000, 1000), (12_000, 10_000)))
    async with running(idle, settings=settings) as (client, _, _):
        await client.send(message(small))  # type: ignore[operator]
        await client.send(message(large))  # type: ignore[operator]
        closed = await client.closed()
    assert closed.code == CloseCode.MESSAGE_TOO_BIG
    assert closed.reason.startswith(f"{where}: image is 12000x10000 pixels; the server takes at most 1000000")


def test_vision_decoding_reads_the_header_first() -> None:
    frames = pytest.importorskip("vision.frames")
    with pytest.raises(frames.ImageDecodeError, match="12000x10000 pixels"):
        frames.decode_image(png_header(12_000, 10_000), max_pixels=10**6)
    portable_pixmap = b"P6\n40000 40000\n255\n" + b"\x00" * 64  # OpenCV would decode it; nothing should
    with pytest.raises(frames.ImageDecodeError, match="not a JPEG, PNG, WebP or BMP"):
        frames.decode_image(portable_pixmap)


# -- close reasons ---------------------------------------------------------------------------------


def assert_ours(reason: str, *library_words: str) -> str:
    """``reason`` carries an error id and none of the library's words; returns the id."""
    assert len(reason.encode()) <= MAX_CLOSE_REASON_BYTES
    for words in library_words:
        assert words not in reason
    match = ERROR_ID.search(reason)
    assert match is not None, reason
    return match.group(1)


async def test_invalid_json_closes_with_an_id_the_log_repeats(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "assistant.session")
    async with running(idle) as (client, _, _):
        await client.end.send('{"realtimeInput": {"text": "unterminated')
        closed = await client.closed()
    assert closed.code == CloseCode.INVALID_ARGUMENT and closed.reason.startswith("message is not valid JSON;")
    error_id = assert_ours(closed.reason, "Unterminated", "line 1", "column", "char")
    [line] = [record.getMessage() for record in caplog.records if error_id in record.getMessage()]
    assert "Unterminated string" in line


async def test_backend_details_stay_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    secret = "[Errno 111] Connect call failed ('10.20.30.40', 443) reading /home/op/.config/key.json"

    async def script(s: ScriptedSession) -> None:
        s.fail(BackendError("cannot reach Gemini", CloseCode.INTERNAL_ERROR, detail=secret))

    caplog.set_level(logging.INFO, "assistant.session")
    async with running(script) as (client, _, _):
        closed = await client.closed()
    assert closed.code == CloseCode.INTERNAL_ERROR and closed.reason.startswith("cannot reach Gemini (error e-")
    error_id = assert_ours(closed.reason, "10.20.30.40", "/home/op", "Errno")
    assert any(error_id in record.getMessage() and secret in record.getMessage() for record in caplog.records)


async def test_a_crash_closes_1011_with_an_id(caplog: pytest.LogCaptureFixture) -> None:
    async def script(s: ScriptedSession) -> None:
        s.fail(RuntimeError("secret internals at /srv/app/session.py"))  # type: ignore[arg-type]  # a crash

    caplog.set_level(logging.INFO, "assistant.session")
    async with running(script) as (client, _, _):
        closed = await client.closed()
    assert closed.code == CloseCode.INTERNAL_ERROR
    error_id = assert_ours(closed.reason, "/srv/app", "secret", "RuntimeError")
    assert any(error_id in record.getMessage() and record.exc_info for record in caplog.records)


def test_a_long_reason_keeps_its_error_id() -> None:
    error = ProtocolError("realtimeInput: " + "very long words " * 20, detail="the parser's own words")
    assert error.error_id is not None and error.reason.endswith(f"(error {error.error_id}; see the server log)")
    assert len(error.reason.encode()) <= MAX_CLOSE_REASON_BYTES
    assert "parser" not in error.reason


@pytest.mark.parametrize(
    ("error", "library_words"),
    [
        (ConnectionRefusedError(111, "Connect call failed ('10.1.2.3', 443)"), "10.1.2.3"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed in /etc/ssl/x.pem"), "/etc/ssl"),
        (ValueError("explicit_vad_signal parameter is only supported in Vertex AI"), "explicit_vad_signal"),
        (DefaultCredentialsError("File /home/op/creds.json was not found."), "/home/op"),
        (ConnectionClosedError(Close(1011, "peer 10.9.9.9 reset"), None), "10.9.9.9"),
        (KeyError("/var/lib/secret"), "/var/lib"),
    ],
)
def test_gemini_failures_keep_library_words_out_of_the_reason(error: BaseException, library_words: str) -> None:
    failure = classify(error)
    assert library_words not in failure.reason
    assert failure.detail is not None and library_words in failure.detail
    closing = BackendError(failure.reason, CloseCode(failure.code), failure.detail)
    assert_ours(closing.reason, library_words)


def test_geminis_own_close_reason_still_reaches_the_client() -> None:
    failure = classify(errors.APIError(1008, "models/x is not found for API version v1beta"))
    assert failure.reason == "models/x is not found for API version v1beta" and failure.detail is None


# -- the serve options -------------------------------------------------------------------------------


def test_serve_options_set_the_session_bounds() -> None:
    parser = argparse.ArgumentParser()
    serve_cli.add_serve_arguments(parser)
    args = parser.parse_args(
        ["--max-queue-bytes", "300000", "--max-history-bytes", "400000", "--max-image-pixels", "500000"]
    )
    settings = serve_cli.server_config(args).session
    assert (settings.inbound_queue_bytes, settings.outbound_queue_bytes) == (300_000, 300_000)
    assert (settings.history_bytes, settings.max_image_pixels) == (400_000, 500_000)
    with pytest.raises(SystemExit):
        parser.parse_args(["--max-queue-bytes", "0"])
