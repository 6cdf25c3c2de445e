"""The registry's execution rules, through a real session whose scripted model calls tools.

Each failure mode must give the model the right response and leave the
session working: the client asks a question afterwards and gets its answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, field_validator

from assistant.protocol import FunctionCall, FunctionResponse, ServerMessage, TextInput
from assistant.session import ToolContext
from assistant.tools import CallContext, ToolError, ToolRegistry, raw_tool, tool
from assistant.tools.builtin.timers import Timers
from tests.support.scripted import ScriptedSession
from tests.support.tools import ManualClock, answer_texts, calling, collect_responses, tool_session
from tests.support.virtual_time import virtual_time

# -- tools under test ---------------------------------------------------------


class Probe:
    """What the tools below saw, for the tests to check."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self.iterations = 0


probe = Probe()


@tool(timeout=0.3)
async def slow(seconds: float) -> str:
    """Sleep longer than allowed."""
    await asyncio.sleep(seconds)
    return "woke up"


@tool
async def wait_forever() -> str:
    """Never answer (until cancelled)."""
    probe.started.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        probe.cancelled.set()
        raise
    return "unreachable"


@tool
def spin() -> int:
    """A sync tool in a pure-Python loop that never checks for cancellation."""
    probe.started.set()
    try:
        while True:
            probe.iterations += 1
    except BaseException:
        probe.cancelled.set()
        raise


@tool
def poll(context: CallContext) -> str:
    """A sync tool that checks for cancellation between blocking waits."""
    probe.started.set()
    while not context.cancelled.wait(0.01):
        pass
    probe.cancelled.set()
    return "stopped"


@tool(cancellable=False)
async def save(text: str) -> str:
    """Finish even when cancelled."""
    probe.started.set()
    await asyncio.sleep(0.2)
    probe.finished.set()
    return f"saved {text}"


@tool
def refuse(city: str) -> str:
    """Raise a ToolError."""
    raise ToolError(f"no city called {city}")


@tool
def explode() -> str:
    """Crash with a bug."""
    raise KeyError("internal detail the model must not see")


@tool
def count(items: list[int], factor: int = 1) -> int:
    """Sum integers."""
    return sum(items) * factor


class Mood(enum.Enum):
    CALM = "calm"


@dataclasses.dataclass
class Reading:
    at: datetime
    where: Path
    mood: Mood


class Summary(BaseModel):
    readings: list[Reading]
    tags: set[str]


@tool
def rich() -> Summary:
    """Return values that are not JSON by themselves."""
    return Summary(readings=[Reading(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), Path("/tmp/x"), Mood.CALM)], tags={"a"})


class Code(BaseModel):
    value: str

    @field_validator("value")
    @classmethod
    def _upper(cls, value: str) -> str:
        if value != value.upper():
            raise ValueError("must be upper case")
        return value


@tool
def redeem(code: Code) -> str:
    """A model with its own validator."""
    return code.value


@tool
async def own_timeout() -> str:
    """A tool whose own network call timed out: a bug to log, not our timeout."""
    raise TimeoutError("socket read timed out")


def registry_with(*tools: Any) -> ToolRegistry:
    registry = ToolRegistry(default_timeout_s=5)
    for each in tools:
        registry.add(each, "test")
    return registry


@pytest.fixture(autouse=True)
def fresh_probe() -> None:
    global probe
    probe = Probe()


# -- every failure mode: the right response, and the session goes on ---------


@virtual_time  # a tool that sleeps past its timeout, on the loop's clock
@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            FunctionCall(id="c1", name="count", args={"items": [1, "two"], "factor": 2}),
            {"error": "invalid arguments for count: items.1: 'two' is not of type 'integer'"},
        ),
        (
            FunctionCall(id="c1", name="count", args={"factor": 2}),
            {"error": "invalid arguments for count: missing required argument 'items'"},
        ),
        (
            FunctionCall(id="c1", name="count", args={"items": [1], "extra": True, "more": 1}),
            {"error": "invalid arguments for count: unexpected arguments 'extra', 'more'"},
        ),
        (FunctionCall(id="c1", name="count", args={"items": [1, 2], "factor": None}), {"output": 3}),
        (FunctionCall(id="c1", name="count", args={"items": [1, 2], "factor": 3.0}), {"output": 9}),
        (FunctionCall(id="c1", name="slow", args={"seconds": 30}), {"error": "slow did not finish within 0.3 s"}),
        (FunctionCall(id="c1", name="refuse", args={"city": "Atlantis"}), {"error": "no city called Atlantis"}),
        (
            FunctionCall(id="c1", name="explode"),
            {"error": "explode failed with an internal error; the server log has the details"},
        ),
        (
            FunctionCall(id="c1", name="rich"),
            {
                "output": {
                    "readings": [{"at": "2026-01-02T03:04:05Z", "where": "/tmp/x", "mood": "calm"}],
                    "tags": ["a"],
                }
            },
        ),
    ],
    ids=[
        "wrong-type",
        "missing",
        "unexpected",
        "null-means-default",
        "integral-float",
        "timeout",
        "tool-error",
        "crash",
        "serialised",
    ],
)
async def test_each_outcome_reaches_the_model_and_the_session_continues(
    call: FunctionCall, expected: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    responses: list[FunctionResponse] = []
    registry = registry_with(slow, refuse, explode, count, rich)
    with caplog.at_level(logging.ERROR, logger="assistant.tools"):
        async with tool_session(registry, calling(call, into=responses)) as (client, _):
            assert await client.heard() == "done"
            assert await client.ask("still there?") == "echo: still there?"
    [response] = responses
    assert (response.id, response.name, response.response) == ("c1", call.name, expected)
    assert response.scheduling is None and response.will_continue is None
    if call.name == "explode":
        # The crash is in the log, with its traceback; the model only got the generic line.
        [record] = [r for r in caplog.records if "crashed" in r.getMessage()]
        assert record.exc_info is not None and "internal detail" in str(record.exc_info[1])


def barge_in_script(call: FunctionCall, seen: list[object]) -> Any:
    """The model calls a tool, the user barges in, the model cancels the call and goes on."""

    async def script(s: ScriptedSession) -> None:
        s.emit(ServerMessage.calls([call]))
        await asyncio.to_thread(probe.started.wait, 10)
        s.emit(ServerMessage.interrupted_turn(), ServerMessage.cancel_calls([call.id or ""]))
        # The next thing the model hears is the user's question, not a late response to the cancelled call.
        seen.append(await s.expect(TextInput))
        s.emit(ServerMessage.output_transcript("echo: after barge-in"), ServerMessage.turn_done())
        await answer_texts(s)

    return script


@pytest.mark.parametrize("name", ["wait_forever", "spin", "poll"])
async def test_barge_in_cancels_async_and_sync_tools(name: str) -> None:
    seen: list[object] = []
    registry = registry_with(wait_forever, spin, poll)
    async with tool_session(registry, barge_in_script(FunctionCall(id="c7", name=name), seen)) as (client, _):
        assert await asyncio.to_thread(probe.cancelled.wait, 10), f"{name} was not cancelled"
        assert await client.ask("hello?") == "echo: after barge-in"
        assert await client.ask("and now?") == "echo: and now?"
    assert seen == [TextInput("hello?")]
    if name == "spin":
        # The pure-Python loop was interrupted inside its thread, which is gone.
        assert probe.iterations > 0
        for thread in [t for t in threading.enumerate() if t.name.startswith("tool-spin")]:
            thread.join(5)
            assert not thread.is_alive()


@virtual_time  # the tool's 0.2 s of work, on the loop's clock
async def test_a_tool_that_is_not_cancellable_finishes_but_its_result_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[object] = []
    registry = registry_with(save)
    script = barge_in_script(FunctionCall(id="c8", name="save", args={"text": "x"}), seen)
    with caplog.at_level(logging.INFO, logger="assistant.tools"):
        async with tool_session(registry, script) as (client, _):
            assert await client.ask("hello?") == "echo: after barge-in"
            async with asyncio.timeout(10):
                while "save (call c8) finished after it was abandoned; its result was dropped" not in caplog.messages:
                    await asyncio.sleep(0.01)
    assert probe.finished.is_set()
    assert seen == [TextInput("hello?")]


@virtual_time  # the slow tool's sleep, on the loop's clock
async def test_a_slow_tool_does_not_hold_up_a_fast_one() -> None:
    responses: list[FunctionResponse] = []
    registry = registry_with(slow, count)
    calls = [
        FunctionCall(id="s", name="slow", args={"seconds": 0.2}),
        FunctionCall(id="f", name="count", args={"items": [2]}),
    ]
    async with tool_session(registry, calling(*calls, into=responses)) as (client, _):
        assert await client.heard() == "done"
    assert [(r.id, r.response) for r in responses] == [("f", {"output": 2}), ("s", {"output": "woke up"})]


# -- non-blocking tools and later results ---------------------------------------


async def test_timer_answers_at_once_then_fires_with_interrupt_on_the_same_call_id() -> None:
    clock = ManualClock()
    registry = ToolRegistry()
    for timer_tool in Timers(clock).tools():
        registry.add(timer_tool, "builtin")
    responses: list[FunctionResponse] = []
    started = asyncio.Event()

    async def script(s: ScriptedSession) -> None:
        s.emit(ServerMessage.calls([FunctionCall(id="t1", name="set_timer", args={"seconds": 300, "label": "tea"})]))
        responses.extend(await collect_responses(s, 1))
        started.set()
        s.emit(ServerMessage.output_transcript("Timer set."), ServerMessage.turn_done())
        responses.extend(await collect_responses(s, 1))
        s.emit(ServerMessage.output_transcript("Your tea is ready."), ServerMessage.turn_done())
        await answer_texts(s)

    async with tool_session(registry, script) as (client, _):
        await started.wait()
        assert await client.heard() == "Timer set."
        first = responses[0]
        assert (first.id, first.name, first.scheduling, first.will_continue) == ("t1", "set_timer", "WHEN_IDLE", True)
        assert first.response is not None
        output = first.response["output"]
        assert datetime.fromisoformat(output.pop("fires_at")) == datetime(2026, 11, 28, 15, 47, 7, tzinfo=UTC)
        assert output == {"status": "started", "label": "tea", "seconds": 300}
        await clock.sleeping(1)
        await clock.advance(299)
        assert len(responses) == 1 and clock.sleepers == 1
        await clock.advance(1)
        async with asyncio.timeout(5):
            while len(responses) < 2:
                await asyncio.sleep(0.01)
        fired = responses[1]
        assert (fired.id, fired.name, fired.scheduling, fired.will_continue) == ("t1", "set_timer", "INTERRUPT", None)
        assert fired.response == {"output": {"status": "fired", "label": "tea"}}
        assert await client.heard() == "Your tea is ready."
        assert await client.ask("thanks") == "echo: thanks"


async def test_a_reminder_for_a_session_that_ended_is_dropped_quietly(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    registry = ToolRegistry()
    for timer_tool in Timers(clock).tools():
        registry.add(timer_tool, "builtin")

    async def gone(response: FunctionResponse) -> None:
        raise ConnectionError("session closed")

    context = ToolContext(session_id="s1", send_response=gone)
    call = FunctionCall(id="r1", name="set_reminder", args={"text": "call mum", "seconds": 60})
    first = await registry.call(call, context)
    assert first.response is not None and first.response["output"]["text"] == "call mum"
    await clock.sleeping(1)
    with caplog.at_level(logging.INFO, logger="assistant.tools"):
        await clock.advance(60)
    assert any("ended before set_reminder could deliver" in r.getMessage() for r in caplog.records)
    await registry.aclose()


async def test_durations_out_of_range_are_tool_errors() -> None:
    registry = ToolRegistry()
    for timer_tool in Timers(ManualClock()).tools():
        registry.add(timer_tool, "builtin")

    async def unused(response: FunctionResponse) -> None:
        raise AssertionError("no later response expected")

    context = ToolContext(session_id="s1", send_response=unused)
    for seconds in (0, -5, 8 * 24 * 3600):
        response = await registry.call(FunctionCall(id="t", name="set_timer", args={"seconds": seconds}), context)
        assert response.response == {"error": "the duration must be more than 0 and at most 604800 seconds (a week)"}
        assert response.will_continue is None
    assert not registry._background  # no later work left behind by refused calls


async def test_raw_tools_get_the_validated_arguments_as_a_dict() -> None:
    seen: list[dict[str, Any]] = []

    def handler(arguments: dict[str, Any], context: CallContext) -> dict[str, Any]:
        seen.append(arguments)
        return {"echo": arguments["word"], "thread": threading.current_thread().name.startswith("tool-")}

    schema = {"type": "object", "properties": {"word": {"type": "string", "minLength": 2}}, "required": ["word"]}
    registry = registry_with(raw_tool("echo_word", "Echo a word.", schema, handler))
    context = ToolContext(session_id="s1", send_response=lambda response: asyncio.sleep(0))
    good = await registry.call(FunctionCall(id="1", name="echo_word", args={"word": "hey"}), context)
    bad = await registry.call(FunctionCall(id="2", name="echo_word", args={"word": "x"}), context)
    assert good.response == {"output": {"echo": "hey", "thread": True}}
    assert bad.response == {"error": "invalid arguments for echo_word: word: 'x' is too short"}
    assert seen == [{"word": "hey"}]


async def test_model_validators_and_a_tools_own_timeout() -> None:
    registry = registry_with(redeem, own_timeout)
    context = ToolContext(session_id="s1", send_response=lambda response: asyncio.sleep(0))
    bad = await registry.call(FunctionCall(id="1", name="redeem", args={"code": {"value": "abc"}}), context)
    good = await registry.call(FunctionCall(id="2", name="redeem", args={"code": {"value": "ABC"}}), context)
    timed_out = await registry.call(FunctionCall(id="3", name="own_timeout"), context)
    assert bad.response == {"error": "invalid arguments for redeem: code.value: Value error, must be upper case"}
    assert good.response == {"output": "ABC"}
    assert timed_out.response == {"error": "own_timeout failed with an internal error; the server log has the details"}


async def test_sync_tools_run_off_the_event_loop() -> None:
    @tool
    def block(seconds: float) -> float:
        """Block the calling thread."""
        time.sleep(seconds)
        return seconds

    registry = registry_with(block)
    context = ToolContext(session_id="s1", send_response=lambda response: asyncio.sleep(0))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    response = await registry.call(FunctionCall(id="1", name="block", args={"seconds": 0.3}), context)
    ticking.cancel()
    assert response.response == {"output": 0.3}
    assert ticks >= 10  # the loop kept running while the tool blocked its own thread
