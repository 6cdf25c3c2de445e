"""The session's rules, driven directly: no event loop, no transport, no store.

Each test feeds ``SessionCore`` what happened (client frames as the codec
decodes them, backend events, tool answers, saves, a drain at a given time)
and asserts the effects it returns, in order.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from assistant.logs import SessionLogger
from assistant.protocol import (
    AudioChunk,
    CloseCode,
    EarlyToolCalls,
    FunctionCall,
    FunctionDeclaration,
    FunctionResponse,
    GoingAway,
    Interrupted,
    ReplyAudio,
    ResumptionUpdate,
    Setup,
    SetupDone,
    TextInput,
    ToolActivity,
    ToolCalls,
    ToolCancellation,
    ToolResponses,
    TurnComplete,
    decode_client_frame,
)
from assistant.session import NoServerTools, SavedSession
from assistant.session.core import SessionCore
from assistant.session.effects import (
    CancelServerTool,
    Close,
    DeleteHandle,
    Effect,
    FlushReplyAudio,
    SaveResumption,
    SendToBackend,
    SendToClient,
    StartServerTool,
)
from tests.test_bounds import png_header


class ServerClock(NoServerTools):
    """The server offers one tool, ``get_time``; the core only asks which tools exist."""

    def declarations(self) -> list[FunctionDeclaration]:
        return [FunctionDeclaration(name="get_time")]

    def handles(self, name: str) -> bool:
        return name == "get_time"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def new_core(*, observe_tools: bool = False, clock: FakeClock | None = None) -> SessionCore:
    """A core before its handshake, on a server that offers ``get_time``."""
    return SessionCore(
        "s1",
        backend_name="scripted",
        tools=ServerClock(),
        log=SessionLogger(logging.getLogger("tests.core"), "s1", "peer", "scripted"),
        clock=clock or FakeClock(),
        history_bytes=100_000,
        max_image_pixels=1_000_000,
        observe_tools=observe_tools,
    )


def make_core(
    *, resumption: bool = False, observe_tools: bool = False, clock: FakeClock | None = None
) -> SessionCore:
    """A core after its handshake: the client declared ``light_on`` and maybe asked for resumption."""
    core = new_core(observe_tools=observe_tools, clock=clock)
    setup: dict[str, Any] = {"model": "m", "tools": [{"functionDeclarations": [{"name": "light_on"}]}]}
    if resumption:
        setup["sessionResumption"] = {}
    request = core.open(Setup.model_validate(setup), None, None)
    assert [d.name for d in request.setup.function_declarations()] == ["light_on", "get_time"]
    return core


def client(core: SessionCore, message: dict[str, Any]) -> list[Effect]:
    assert core.frame_received()
    return core.client_message(decode_client_frame(json.dumps(message)))


def answer(call_id: str, name: str = "light_on") -> dict[str, Any]:
    return {"toolResponse": {"functionResponses": [{"id": call_id, "name": name, "response": {"ok": True}}]}}


def sent_to_client(effects: list[Effect]) -> list[object]:
    return [effect.event for effect in effects if isinstance(effect, SendToClient)]


# -- tool calls --------------------------------------------------------------------------------------


def test_tool_calls_are_split_between_client_server_and_unknown() -> None:
    core = make_core()
    effects = core.backend_event(
        ToolCalls(
            [
                FunctionCall(name="light_on", args={"room": "hall"}),
                FunctionCall(id="t1", name="get_time"),
                FunctionCall(id="u1", name="launch_rocket"),
            ]
        )
    )
    start, to_client, to_backend = effects
    assert start == StartServerTool(FunctionCall(id="t1", name="get_time"))
    assert isinstance(to_client, SendToClient) and isinstance(to_client.event, ToolCalls)
    (client_call,) = to_client.event.calls
    assert client_call.name == "light_on" and client_call.id and client_call.id.startswith("call-")
    refusal = {"error": "there is no tool named launch_rocket"}
    refused = FunctionResponse(id="u1", name="launch_rocket", response=refusal)
    assert to_backend == SendToBackend(ToolResponses([refused]))
    assert core.calls.client_calls == {client_call.id: "light_on"} and core.calls.server_calls == {"t1": "get_time"}


def test_only_answers_to_pending_client_calls_reach_the_backend() -> None:
    core = make_core()
    core.backend_event(ToolCalls([FunctionCall(id="c1", name="light_on")]))
    assert client(core, answer("nobody-asked")) == []
    (forwarded,) = client(core, answer("c1"))
    assert isinstance(forwarded, SendToBackend) and isinstance(forwarded.event, ToolResponses)
    assert [r.id for r in forwarded.event.responses] == ["c1"]
    assert client(core, answer("c1")) == []  # answered once already


def test_a_server_tool_answer_goes_to_the_backend_under_its_call_and_is_reported() -> None:
    core = make_core(observe_tools=True)
    call = FunctionCall(id="t1", name="get_time")
    running, start = core.backend_event(ToolCalls([call]))
    assert isinstance(running, SendToClient) and isinstance(running.event, ToolActivity)
    assert running.event.activity.state == "running" and start == StartServerTool(call)
    to_backend, done = core.tool_finished(call, FunctionResponse(response={"time": "noon"}))
    noon = FunctionResponse(id="t1", name="get_time", response={"time": "noon"})
    assert to_backend == SendToBackend(ToolResponses([noon]))
    assert isinstance(done, SendToClient) and isinstance(done.event, ToolActivity)
    assert done.event.activity.state == "done" and not core.calls.server_calls


def test_a_crashed_server_tool_tells_the_model_it_failed_without_saying_why() -> None:
    core = make_core(observe_tools=True)
    call = FunctionCall(id="t1", name="get_time")
    core.backend_event(ToolCalls([call]))
    to_backend, failed = core.tool_failed(call)
    assert to_backend == SendToBackend(
        ToolResponses([FunctionResponse(id="t1", name="get_time", response={"error": "get_time failed"})])
    )
    assert isinstance(failed, SendToClient) and isinstance(failed.event, ToolActivity)
    assert failed.event.activity.state == "failed"


def test_cancellation_reaches_whoever_runs_the_call() -> None:
    core = make_core(observe_tools=True)
    server_call = FunctionCall(id="t1", name="get_time")
    core.backend_event(ToolCalls([server_call, FunctionCall(id="c1", name="light_on")]))
    cancel, cancelled, to_client = core.backend_event(ToolCancellation(["t1", "c1", "never-issued"]))
    assert cancel == CancelServerTool("t1")
    assert isinstance(cancelled, SendToClient) and isinstance(cancelled.event, ToolActivity)
    assert cancelled.event.activity.state == "cancelled"
    assert to_client == SendToClient(ToolCancellation(["c1"]))
    assert core.tool_finished(server_call, FunctionResponse(response={})) == []  # the model stopped waiting
    assert client(core, answer("c1")) == []
    assert not core.calls.client_calls and not core.calls.server_calls


# -- calls offered early (a reply prepared while the user pauses) --------------------------------------


class ServerClockAndAlarm(ServerClock):
    """``get_time`` only reads; ``set_alarm`` changes something, so it never runs before its turn is sure."""

    def declarations(self) -> list[FunctionDeclaration]:
        return [FunctionDeclaration(name="get_time"), FunctionDeclaration(name="set_alarm")]

    def handles(self, name: str) -> bool:
        return name in ("get_time", "set_alarm")

    def read_only(self, name: str) -> bool:
        return name == "get_time"


def early_core() -> SessionCore:
    core = make_core(observe_tools=True)
    core.tools = core.calls.tools = ServerClockAndAlarm()
    return core


def test_only_read_only_server_tools_run_early_and_only_the_backend_hears_their_answer() -> None:
    core = early_core()
    time_call, alarm, light = (
        FunctionCall(id="t1", name="get_time"),
        FunctionCall(id="a1", name="set_alarm"),
        FunctionCall(id="c1", name="light_on"),  # the client's: it cannot be asked to run anything early
    )
    assert core.backend_event(EarlyToolCalls([time_call, alarm, light])) == [StartServerTool(time_call)]
    noon = FunctionResponse(id="t1", name="get_time", response={"time": "noon"})
    assert core.tool_finished(time_call, FunctionResponse(response={"time": "noon"})) == [
        SendToBackend(ToolResponses([noon]))
    ]
    assert core.conversation.snapshot() == [] and not core.calls.out() and not core.turn_in_flight()


def test_a_confirmed_early_call_is_recorded_as_made_then_and_not_run_again() -> None:
    core = early_core()
    call = FunctionCall(id="t1", name="get_time")
    core.backend_event(EarlyToolCalls([call]))
    core.tool_finished(call, FunctionResponse(response={"time": "noon"}))
    running, done = core.backend_event(ToolCalls([call]))
    assert isinstance(running, SendToClient) and isinstance(running.event, ToolActivity)
    assert isinstance(done, SendToClient) and isinstance(done.event, ToolActivity)
    assert (running.event.activity.state, done.event.activity.state) == ("running", "done")
    history = core.conversation.snapshot()
    assert [part.function_call for part in history[0].parts or []] == [call]
    answered = [part.function_response for part in history[1].parts or []]
    assert answered == [FunctionResponse(id="t1", name="get_time", response={"time": "noon"})]
    assert not core.calls.out()


def test_an_early_call_confirmed_while_it_runs_finishes_as_any_call() -> None:
    core = early_core()
    call = FunctionCall(id="t1", name="get_time")
    core.backend_event(EarlyToolCalls([call]))
    (running,) = core.backend_event(ToolCalls([call]))  # no second StartServerTool
    assert isinstance(running, SendToClient) and core.calls.server_calls == {"t1": "get_time"}
    to_backend, done = core.tool_finished(call, FunctionResponse(response={"time": "noon"}))
    assert to_backend == SendToBackend(ToolResponses([FunctionResponse(id="t1", name="get_time",
                                                                         response={"time": "noon"})]))
    assert isinstance(done, SendToClient) and not core.calls.out()


def test_dropping_early_calls_stops_the_running_ones_and_tells_nobody() -> None:
    core = early_core()
    running, answered = FunctionCall(id="t1", name="get_time"), FunctionCall(id="t2", name="get_time")
    core.backend_event(EarlyToolCalls([running, answered]))
    core.tool_finished(answered, FunctionResponse(response={"time": "noon"}))
    assert core.backend_event(ToolCancellation(["t1", "t2"])) == [CancelServerTool("t1")]
    assert core.tool_finished(running, FunctionResponse(response={})) == []  # nobody waits for it
    assert core.conversation.snapshot() == [] and not core.calls.early_calls


# -- turns -------------------------------------------------------------------------------------------


def test_a_completed_turn_is_counted_and_timed(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    core = make_core(clock=clock)
    clock.now = 1.0
    (to_backend,) = client(core, {"realtimeInput": {"text": "hello"}})
    assert to_backend == SendToBackend(TextInput("hello"))
    clock.now = 1.25
    audio = ReplyAudio.from_pcm(b"\x00\x00" * 12_000)  # 0.5 s at 24 kHz
    assert core.backend_event(audio) == [SendToClient(audio, droppable=True)]
    assert core.turn_in_flight()
    with caplog.at_level(logging.INFO, logger="tests.core"):
        assert core.backend_event(TurnComplete()) == [SendToClient(TurnComplete())]
    assert core.stats.turns == 1 and core.stats.audio_out_s == pytest.approx(0.5)
    assert "turn 1 complete: first reply 250 ms after end of input, 0.5 s reply audio" in caplog.text
    assert not core.turn_in_flight()


def test_a_barge_in_flushes_queued_reply_audio_before_telling_the_client(caplog: pytest.LogCaptureFixture) -> None:
    core = make_core()
    core.backend_event(ReplyAudio.from_pcm(b"\x00\x00" * 240))
    assert core.backend_event(Interrupted()) == [FlushReplyAudio(), SendToClient(Interrupted())]
    with caplog.at_level(logging.INFO, logger="tests.core"):
        core.backend_event(TurnComplete())
    assert "turn 1 interrupted" in caplog.text


def test_client_audio_is_resampled_to_16_khz_and_may_be_shed() -> None:
    core = make_core()
    pcm = b"\x01\x00" * 480  # 10 ms at 48 kHz
    (to_backend,) = client(
        core,
        {"realtimeInput": {"audio": {"data": base64.b64encode(pcm).decode(), "mimeType": "audio/pcm;rate=48000"}}},
    )
    assert isinstance(to_backend, SendToBackend) and to_backend.droppable
    assert isinstance(to_backend.event, AudioChunk) and to_backend.event.sample_rate == 16_000
    assert core.stats.audio_in_s == pytest.approx(0.01)


def test_the_backends_own_handshake_and_handles_stay_inside() -> None:
    core = make_core(resumption=True)
    assert core.backend_event(SetupDone("backend-id")) == []
    assert core.backend_event(ResumptionUpdate(new_handle="backend-handle", resumable=True)) == []


# -- resumption --------------------------------------------------------------------------------------


def test_no_handle_while_a_call_is_out_and_one_after_its_answer() -> None:
    core = make_core(resumption=True)
    core.backend_event(ToolCalls([FunctionCall(id="c1", name="light_on")]))
    assert sent_to_client(core.backend_event(TurnComplete())) == [
        TurnComplete(),
        ResumptionUpdate(resumable=False),
    ]
    forwarded, save = client(core, answer("c1"))
    assert isinstance(forwarded, SendToBackend) and isinstance(save, SaveResumption)
    assert save.saved.pending_calls == {} and save.saved.turns == 1 and save.saved.conversation == "s1"
    assert core.save_done(save) == [SendToClient(ResumptionUpdate(new_handle=save.handle, resumable=True))]
    assert core.handle == save.handle


def test_each_turn_saves_under_a_fresh_handle_and_retires_the_previous_once_saved() -> None:
    core = make_core(resumption=True)
    first = core.backend_event(TurnComplete())[-1]
    assert isinstance(first, SaveResumption)
    assert core.handle is None  # the client hears of a handle only once it is saved
    core.save_done(first)
    second = core.backend_event(TurnComplete())[-1]
    assert isinstance(second, SaveResumption) and second.handle != first.handle
    assert core.save_done(second) == [
        SendToClient(ResumptionUpdate(new_handle=second.handle, resumable=True)),
        DeleteHandle(first.handle),
    ]


def test_a_save_that_lands_after_a_call_went_out_is_not_announced() -> None:
    # Saves run beside the turn: the first turn's save may land after the second turn said resumable: false.
    core = make_core(resumption=True)
    first = core.backend_event(TurnComplete())[-1]
    assert isinstance(first, SaveResumption)
    core.backend_event(ToolCalls([FunctionCall(id="c1", name="light_on")]))
    assert sent_to_client(core.backend_event(TurnComplete()))[-1] == ResumptionUpdate(resumable=False)
    assert core.save_done(first) == []  # the client's last word stays "not resumable now"
    _, save = client(core, answer("c1"))
    assert isinstance(save, SaveResumption)
    assert core.save_done(save) == [
        SendToClient(ResumptionUpdate(new_handle=save.handle, resumable=True)),
        DeleteHandle(first.handle),
    ]


def test_a_failed_save_says_resumable_false_and_keeps_the_handle_the_client_has() -> None:
    core = make_core(resumption=True)
    first = core.backend_event(TurnComplete())[-1]
    assert isinstance(first, SaveResumption)
    core.save_done(first)
    second = core.backend_event(TurnComplete())[-1]
    assert isinstance(second, SaveResumption)
    assert core.save_failed(second) == [SendToClient(ResumptionUpdate(resumable=False))]
    assert core.handle == first.handle


def test_without_resumption_a_turn_saves_nothing() -> None:
    core = make_core()
    assert core.backend_event(TurnComplete()) == [SendToClient(TurnComplete())]


def test_a_resumed_core_takes_the_conversation_and_its_pending_calls() -> None:
    core = new_core()
    saved = SavedSession(
        setup={"model": "m", "tools": [{"functionDeclarations": [{"name": "light_on"}]}]},
        history=[{"role": "user", "parts": [{"text": "hi"}]}],
        backend="scripted",
        backend_state={"kept": True},
        turns=3,
        conversation="conv-1",
        pending_calls={"c9": "light_on"},
    )
    setup = Setup.model_validate({"model": "m", "sessionResumption": {"handle": "h-old"}})
    request = core.open(setup, saved, None)
    assert request.backend_state == {"kept": True} and [t.text() for t in request.history] == ["hi"]
    assert core.handle == "h-old" and core.conversation_id == "conv-1" and core.stats.turns == 3
    (forwarded,) = client(core, answer("c9"))  # a call from before the reconnection is answered now
    assert isinstance(forwarded, SendToBackend) and isinstance(forwarded.event, ToolResponses)
    assert [r.id for r in forwarded.event.responses] == ["c9"] and not core.calls.client_calls


# -- drain -------------------------------------------------------------------------------------------


def test_a_drain_lets_the_turn_settle_then_stops_input_and_saves_with_the_call_unanswered() -> None:
    core = make_core(resumption=True)
    client(core, {"realtimeInput": {"text": "turn the light on"}})
    core.backend_event(ToolCalls([FunctionCall(id="c1", name="light_on")]))
    assert core.drain(now=10.0, time_left_s=4.0) == [SendToClient(GoingAway("4s"))]
    assert core.settle_by() == 13.0  # a second kept for saving and closing
    assert not core.drain_settled(12.9)
    assert core.drain_settled(13.0)
    (save,) = core.close_input()
    assert isinstance(save, SaveResumption) and not save.retire_previous
    assert save.saved.pending_calls == {"c1": "light_on"}
    assert not core.frame_received()  # later input could not be kept: the client resends after the restart
    assert core.backend_event(TurnComplete()) == [SendToClient(TurnComplete())]  # no second save


def test_a_drain_with_nothing_in_flight_settles_at_once() -> None:
    core = make_core()
    core.drain(now=0.0, time_left_s=0.2)
    assert core.drain_settled(0.0)
    assert core.close_input() == []  # the client did not ask for resumption


# -- bad input ---------------------------------------------------------------------------------------


def test_a_second_setup_closes_with_the_projects_reason() -> None:
    core = make_core()
    assert client(core, {"setup": {"model": "m"}}) == [
        Close(CloseCode.INVALID_ARGUMENT, "setup was already sent; send it once, as the first message")
    ]


def test_an_image_over_the_pixel_cap_closes_1009() -> None:
    core = make_core()
    large = base64.b64encode(png_header(2_000, 1_000)).decode()
    (close,) = client(core, {"realtimeInput": {"video": {"data": large, "mimeType": "image/png"}}})
    assert isinstance(close, Close) and close.code == CloseCode.MESSAGE_TOO_BIG
    assert close.reason.startswith("realtimeInput.video: image is 2000x1000 pixels; the server takes at most 1000000")
    assert core.latest_frame is None
