"""The conversation store on a real Redis server, shared by several server processes.

Each "process" here is its own ``RedisConversationStore`` (its own
connection, pub/sub channel and node id) in the test's event loop, talking
to a real ``redis-server`` started for the test; the end-to-end test with
separate ``assistant serve`` processes is in ``test_store_balanced``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from assistant.protocol import FunctionCall, FunctionResponse, ServerMessage
from assistant.session import Session
from assistant.session.counts import MemorySessionCounter
from assistant.session.pipe import pipe
from assistant.session.redis_connection import redacted
from assistant.session.redis_counts import RedisSessionCounter
from assistant.session.redis_store import RedisConversationStore
from assistant.session.resumption import SavedSession, StoreUnavailable
from assistant.tools import ToolRegistry
from assistant.tools.builtin.timers import Timers
from tests.support.redis_server import RedisServer
from tests.support.scripted import Script, ScriptedBackend, ScriptedSession
from tests.support.tools import Client, ManualClock, answer_texts, collect_responses, scripted_connection


@asynccontextmanager
async def process_store(url: str) -> AsyncIterator[RedisConversationStore]:
    """What one ``assistant serve --store URL`` process holds."""
    store = RedisConversationStore(url)
    await store.start()
    await asyncio.wait_for(store.redis_late_results.listening.wait(), 5)
    try:
        yield store
    finally:
        await store.aclose()


def response(name: str, n: int = 0) -> FunctionResponse:
    return FunctionResponse(id=f"{name}-{n}", name=name, response={"output": n})


class Inbox:
    """A receiver that records what reached it and wakes a waiting test."""

    def __init__(self) -> None:
        self.got: list[FunctionResponse] = []
        self.arrived = asyncio.Event()

    async def __call__(self, late: FunctionResponse) -> None:
        self.got.append(late)
        self.arrived.set()

    async def next(self, timeout: float = 5.0) -> FunctionResponse:
        await asyncio.wait_for(self.arrived.wait(), timeout)
        self.arrived.clear()
        return self.got[-1]


def saved(turns: int) -> SavedSession:
    return SavedSession(setup={"model": "models/test"}, history=[], backend="scripted", turns=turns, conversation="c")


async def test_handles_are_shared_and_expire(redis_server: RedisServer) -> None:
    async with process_store(redis_server.url) as a, process_store(redis_server.url) as b:
        await a.resumption.save("h1", saved(3), ttl_s=60)
        await a.resumption.save("short", saved(1), ttl_s=0.2)
        loaded = await b.resumption.load("h1")
        assert loaded is not None and (loaded.turns, loaded.conversation) == (3, "c")
        await b.resumption.delete("h1")
        assert await a.resumption.load("h1") is None
        await asyncio.sleep(0.4)
        assert await a.resumption.load("short") is None  # Redis expired it: nothing to purge by hand
        assert await a.resumption.reachable()


async def test_a_late_result_reaches_the_live_session_on_another_process_at_once(redis_server: RedisServer) -> None:
    async with process_store(redis_server.url) as a, process_store(redis_server.url) as b:
        on_b = Inbox()
        assert await b.late_results.attach("c", on_b) == []
        await a.late_results.deliver("c", response("timer", 1))  # the timer runs on process A
        assert await on_b.next() == response("timer", 1)
        await b.late_results.detach("c", on_b, resumable_for_s=60)
        await a.late_results.deliver("c", response("timer", 2))
        await a.late_results.deliver("c", response("reminder", 3))
        assert await a.late_results.held("c") == 2
        on_a = Inbox()
        assert await a.late_results.attach("c", on_a) == [response("timer", 2), response("reminder", 3)]
        assert await b.late_results.held("c") == 0


async def test_a_stray_message_on_a_process_channel_does_not_stop_its_listener(redis_server: RedisServer) -> None:
    async with process_store(redis_server.url) as a, process_store(redis_server.url) as b:
        inbox = Inbox()
        await b.late_results.attach("c", inbox)
        channel = f"assistant:late:node:{b.redis_late_results.node}"
        assert await a.connection.client.publish(channel, "not a late result") == 1
        await a.late_results.deliver("c", response("timer"))
        assert await inbox.next() == response("timer")


async def test_a_stale_session_ending_late_does_not_unhook_its_successor(redis_server: RedisServer) -> None:
    async with process_store(redis_server.url) as a, process_store(redis_server.url) as b:
        old, new = Inbox(), Inbox()
        await a.late_results.attach("c", old)
        await b.late_results.attach("c", new)  # the client came back on B before A noticed the drop
        await a.late_results.detach("c", old, resumable_for_s=None)
        await a.late_results.deliver("c", response("timer"))
        assert await new.next() == response("timer") and old.got == []


async def test_results_nobody_can_come_back_for_are_let_go(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with process_store(redis_server.url) as a:
        inbox = Inbox()
        await a.late_results.attach("once", inbox)
        await a.late_results.detach("once", inbox, resumable_for_s=None)
        with caplog.at_level(logging.INFO, logger="assistant.session.redis"):
            await a.late_results.deliver("once", response("timer"))
        assert await a.late_results.held("once") == 0 and "has nobody to go to" in caplog.text
        await a.late_results.attach("brief", inbox)
        await a.late_results.detach("brief", inbox, resumable_for_s=0.2)
        await asyncio.sleep(0.4)  # the handle expired: nobody can resume any more
        await a.late_results.deliver("brief", response("timer"))
        assert await a.late_results.held("brief") == 0


async def test_results_for_a_killed_process_wait_for_the_client_to_resume_elsewhere(redis_server: RedisServer) -> None:
    async with process_store(redis_server.url) as b:
        killed = RedisConversationStore(redis_server.url)
        await killed.start()
        await asyncio.wait_for(killed.redis_late_results.listening.wait(), 5)
        await killed.late_results.attach("c", Inbox())
        await killed.aclose()  # gone without detaching, as after SIGKILL: its channel has no listener
        await b.late_results.deliver("c", response("timer"))
        assert await b.late_results.held("c") == 1
        resumed = Inbox()
        assert await b.late_results.attach("c", resumed) == [response("timer")]


async def test_session_counts_are_shared_and_a_killed_process_frees_its_slots(redis_server: RedisServer) -> None:
    async with process_store(redis_server.url) as a, process_store(redis_server.url) as b:
        first = await a.session_counts.acquire("key-1", limit=2)
        second = await b.session_counts.acquire("key-1", limit=2)
        assert first is not None and second is not None
        assert await a.session_counts.acquire("key-1", limit=2) is None  # two processes, one limit
        assert await b.session_counts.acquire("key-2", limit=2) is not None  # other keys count apart
        await first.release()
        await first.release()  # twice is harmless
        assert await b.session_counts.count("key-1") == 1
        assert await a.session_counts.acquire("key-1", limit=2) is not None
    short = RedisConversationStore(redis_server.url)
    short.session_counts = short.redis_session_counts = RedisSessionCounter(short.connection, lease_s=0.3)
    await short.start()
    assert await short.session_counts.acquire("key-3", limit=1) is not None
    await asyncio.sleep(0.5)  # renewed: a live process keeps its slots past the lease
    assert await short.session_counts.count("key-3") == 1
    await short.aclose()  # killed: no release, no renewal
    async with process_store(redis_server.url) as c:
        await asyncio.sleep(0.4)
        assert await c.session_counts.count("key-3") == 0
        assert await c.session_counts.acquire("key-3", limit=1) is not None


async def test_the_store_keeps_the_access_key_out_of_redis_and_passwords_out_of_logs(redis_server: RedisServer) -> None:
    async with process_store(redis_server.url) as a:
        assert await a.session_counts.acquire("sk-secret-key", limit=1) is not None
        keys = await a.connection.client.keys("*")
        assert keys and not any("sk-secret" in key for key in keys)
    assert redacted("redis://user:hunter2@db.internal:6380/1") == "redis://user:***@db.internal:6380/1"


def connection(
    script: Script, setup: dict[str, object], store: RedisConversationStore, registry: ToolRegistry | None = None
) -> AbstractAsyncContextManager[tuple[Client, Session, ScriptedBackend]]:
    """A session on the process whose store is ``store``."""
    return scripted_connection(
        script, setup, store=store.resumption, tools=registry, late_results=store.late_results
    )


async def next_update(client: Client) -> tuple[str | None, bool | None]:
    while True:
        message = await client.recv()
        if message.session_resumption_update is not None:
            return message.session_resumption_update.new_handle, message.session_resumption_update.resumable


async def test_when_redis_goes_away_the_conversation_goes_on_and_handles_come_back(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    setup: dict[str, object] = {"setup": {"model": "models/test", "sessionResumption": {}}}
    async with process_store(redis_server.url) as a:
        async with connection(answer_texts, setup, a) as (client, _, _):
            assert await client.ask("one") == "echo: one"
            handle, resumable = await next_update(client)
            assert handle and resumable
            redis_server.stop()
            with caplog.at_level(logging.WARNING, logger="assistant.session.redis"):
                assert await client.ask("two") == "echo: two"  # the session goes on
                assert await next_update(client) == (None, False)  # but no new handle is promised
                assert await client.ask("three") == "echo: three"
                assert await next_update(client) == (None, False)
            outage = [r for r in caplog.records if "unreachable" in r.getMessage()]
            assert len(outage) == 1, caplog.text  # one clear line per outage, not one per turn
            redis_server.start()
            assert await client.ask("four") == "echo: four"
            handle, resumable = await next_update(client)  # back by itself
            assert handle and resumable
            assert "reachable again" in caplog.text
    # the handle given after the outage resumes on another process, with the whole conversation
    resume: dict[str, object] = {"setup": {"model": "models/test", "sessionResumption": {"handle": handle}}}
    async with process_store(redis_server.url) as b:
        async with connection(answer_texts, resume, b) as (client, session, _):
            said = [turn.text() for turn in session.conversation.snapshot()]
            assert said == [
                "one",
                "echo: one",
                "two",
                "echo: two",
                "three",
                "echo: three",
                "four",
                "echo: four",
            ]
            assert await client.ask("five") == "echo: five"


async def test_resuming_while_redis_is_away_closes_with_a_reason_to_retry(redis_server: RedisServer) -> None:
    async with process_store(redis_server.url) as a:
        redis_server.stop()
        resume = {"setup": {"model": "models/test", "sessionResumption": {"handle": "h"}}}
        backend = ScriptedBackend(answer_texts)
        server_end, client_end = pipe()
        session = Session(server_end, backend, store=a.resumption, late_results=a.late_results)
        task = asyncio.create_task(session.run())
        client = Client(client_end)
        await client.send(resume)
        closed = await client.closed()
        await asyncio.wait_for(task, 10)
        assert session.close_code == 1011 and "resume with the same handle in a moment" in session.close_reason
        assert closed is not None
        with pytest.raises(StoreUnavailable):
            await a.resumption.load("h")


async def test_a_timer_set_on_one_process_fires_into_the_conversation_live_on_another(
    redis_server: RedisServer,
) -> None:
    clock = ManualClock()
    registry = ToolRegistry()
    for timer_tool in Timers(clock).tools():
        registry.add(timer_tool, "builtin")
    setup: dict[str, object] = {"setup": {"model": "models/test", "sessionResumption": {}}}

    async def sets_a_timer(s: ScriptedSession) -> None:
        s.emit(ServerMessage.calls([FunctionCall(id="t1", name="set_timer", args={"seconds": 300, "label": "tea"})]))
        [started] = await collect_responses(s, 1)
        assert started.will_continue
        s.emit(ServerMessage.output_transcript("Timer set."), ServerMessage.turn_done())
        await answer_texts(s)

    heard: list[FunctionResponse] = []

    async def hears_the_timer(s: ScriptedSession) -> None:
        heard.extend(await collect_responses(s, 1))
        s.emit(ServerMessage.output_transcript("Your tea is ready."), ServerMessage.turn_done())
        await answer_texts(s)

    async with process_store(redis_server.url) as a, process_store(redis_server.url) as b:
        async with connection(sets_a_timer, setup, a, registry) as (client, first, _):
            assert await client.heard() == "Timer set."
            handle, _ = await next_update(client)
            await clock.sleeping(1)
        resume: dict[str, object] = {"setup": {"model": "models/test", "sessionResumption": {"handle": handle}}}
        async with connection(hears_the_timer, resume, b) as (client, second, _):
            await clock.advance(300)  # the timer runs on A; the conversation is live on B
            assert await client.heard() == "Your tea is ready."
            assert second.conversation_id == first.conversation_id
            [fired] = heard
            assert (fired.id, fired.name) == ("t1", "set_timer")
            assert fired.response == {"output": {"status": "fired", "label": "tea"}}
            assert await client.ask("thanks") == "echo: thanks"
    await registry.aclose()


async def test_a_task_cancelled_inside_a_redis_command_stops(redis_server: RedisServer) -> None:
    # redis-py returns normally from many commands cancelled midway; a session saving a handle as its
    # client left then read its backend forever. Cancellations land at varied points of the command.
    saved = SavedSession(setup={"model": "models/test"}, history=[], backend="scripted")
    outcomes: list[str] = []
    async with process_store(redis_server.url) as a:

        async def save_then_report() -> None:
            await a.resumption.save("h", saved, 60)
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                outcomes.append("went on after its cancellation")

        for yields in [n % 8 for n in range(200)]:
            task = asyncio.create_task(save_then_report())
            for _ in range(yields):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert outcomes == []


async def test_the_memory_counter_counts_per_key_in_this_process() -> None:
    counter = MemorySessionCounter()
    first = await counter.acquire("key-1", limit=1)
    assert first is not None and await counter.acquire("key-1", limit=1) is None
    assert await counter.acquire("key-2", limit=1) is not None
    await first.release()
    await first.release()  # twice is harmless
    assert await counter.count("key-1") == 0
    assert await counter.acquire("key-1", limit=1) is not None


async def test_while_redis_is_away_each_process_still_enforces_the_limit_itself(redis_server: RedisServer) -> None:
    async with process_store(redis_server.url) as a:
        redis_server.stop()
        held = await a.session_counts.acquire("key-1", limit=1)
        assert held is not None  # sessions go on
        assert await a.session_counts.acquire("key-1", limit=1) is None  # within this process, the limit holds
        await held.release()
        assert await a.session_counts.acquire("key-1", limit=1) is not None


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "sqlite:///tmp/x.db"])
def test_store_takes_only_a_redis_url(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from assistant.cli import main

    assert main(["serve", "--backend", "local", "--store", url]) == 2
    assert "--store takes a Redis URL (redis://, rediss://, unix://)" in capsys.readouterr().err
