"""A timer set over one connection fires into the next one that resumes the conversation."""

from __future__ import annotations

import logging

import pytest

from assistant.protocol import FunctionCall, FunctionResponse, ServerMessage
from assistant.session import LateResults, MemoryResumptionStore
from assistant.tools import ToolRegistry
from assistant.tools.builtin.timers import Timers
from tests.support.scripted import ScriptedSession
from tests.support.tools import ManualClock, answer_texts, collect_responses, scripted_connection


def response(name: str, n: int = 0) -> FunctionResponse:
    return FunctionResponse(id=f"{name}-{n}", name=name, response={"output": n})


class Inbox:
    """A receiver that records what reached it."""

    def __init__(self) -> None:
        self.got: list[FunctionResponse] = []

    async def __call__(self, late: FunctionResponse) -> None:
        self.got.append(late)


async def test_a_late_result_goes_to_whichever_session_holds_the_conversation() -> None:
    now = [0.0]
    late = LateResults(clock=lambda: now[0])
    first, second = Inbox(), Inbox()
    assert await late.attach("c", first) == []
    await late.deliver("c", response("timer", 1))
    await late.detach("c", first, resumable_for_s=60)
    await late.deliver("c", response("timer", 2))
    await late.deliver("c", response("reminder", 3))
    assert await late.held("c") == 2 and first.got == [response("timer", 1)]
    assert await late.attach("c", second) == [response("timer", 2), response("reminder", 3)]  # oldest first
    await late.deliver("c", response("timer", 4))
    assert second.got == [response("timer", 4)] and await late.held("c") == 0


async def test_a_stale_session_ending_late_does_not_unhook_its_successor() -> None:
    late = LateResults()
    old, new = Inbox(), Inbox()
    await late.attach("c", old)
    await late.attach("c", new)  # the client came back before the server noticed the old connection drop
    await late.detach("c", old, resumable_for_s=None)
    await late.deliver("c", response("timer"))
    assert new.got == [response("timer")] and old.got == []


async def test_results_nobody_can_come_back_for_are_let_go(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    late = LateResults(clock=lambda: now[0])
    await late.attach("once", Inbox())
    await late.detach("once", late._mailboxes["once"].receiver, resumable_for_s=None)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="assistant.session.late"):
        await late.deliver("once", response("timer"))
    assert await late.held("once") == 0 and "has nobody to go to" in caplog.text
    inbox = Inbox()
    await late.attach("resumable", inbox)
    await late.detach("resumable", inbox, resumable_for_s=60)
    await late.deliver("resumable", response("timer"))
    now[0] = 61.0  # the handle expired: nobody can resume any more
    assert await late.attach("resumable", Inbox()) == []


@pytest.mark.parametrize("resumable", [True, False])
async def test_a_timer_that_fires_between_connections_is_told_to_the_resumed_one(resumable: bool) -> None:
    clock = ManualClock()
    registry = ToolRegistry()
    for timer_tool in Timers(clock).tools():
        registry.add(timer_tool, "builtin")
    store, late = MemoryResumptionStore(), LateResults()
    setup: dict[str, object] = {"setup": {"model": "models/test", **({"sessionResumption": {}} if resumable else {})}}

    async def sets_a_timer(s: ScriptedSession) -> None:
        s.emit(ServerMessage.calls([FunctionCall(id="t1", name="set_timer", args={"seconds": 300, "label": "tea"})]))
        [started] = await collect_responses(s, 1)
        assert started.will_continue
        s.emit(ServerMessage.output_transcript("Timer set."), ServerMessage.turn_done())
        await answer_texts(s)

    options = {"store": store, "tools": registry, "late_results": late}
    async with scripted_connection(sets_a_timer, setup, **options) as (client, first, _):
        assert await client.heard() == "Timer set."
        assert (await client.recv()).is_turn_complete
        handle = None
        if resumable:
            update = (await client.recv()).session_resumption_update
            assert update is not None and update.new_handle
            handle = update.new_handle
        await clock.sleeping(1)
    await clock.advance(300)  # the tea is ready while the client is away
    if not resumable:
        assert await late.held(first.conversation_id) == 0  # no handle, nobody to come back: let go
        await registry.aclose()
        return
    assert await late.held(first.conversation_id) == 1
    heard: list[FunctionResponse] = []

    async def hears_the_timer(s: ScriptedSession) -> None:
        heard.extend(await collect_responses(s, 1))
        s.emit(ServerMessage.output_transcript("Your tea is ready."), ServerMessage.turn_done())
        await answer_texts(s)

    resume = {"setup": {"model": "models/test", "sessionResumption": {"handle": handle}}}
    async with scripted_connection(hears_the_timer, resume, **options) as (client, second, _):
        assert await client.heard() == "Your tea is ready."
        assert second.conversation_id == first.conversation_id and second.id != first.id
        [fired] = heard
        assert (fired.id, fired.name, fired.scheduling) == ("t1", "set_timer", "INTERRUPT")
        assert fired.response == {"output": {"status": "fired", "label": "tea"}}
        # the late result is part of the conversation the next handle resumes
        turns = second.conversation.snapshot()
        assert [part.function_response for part in turns[-2].parts] == [fired]
        assert turns[-1].text() == "Your tea is ready."
        assert await client.ask("thanks") == "echo: thanks"
    await registry.aclose()
