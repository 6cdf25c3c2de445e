"""The session's plain parts: flow queues, resumption stores, history, config merging."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from assistant.protocol import (
    ClientTurns,
    Content,
    FunctionCall,
    FunctionDeclaration,
    FunctionResponse,
    InputTranscript,
    Interrupted,
    OutputTranscript,
    Part,
    Setup,
    TextInput,
    ToolCalls,
    ToolResponses,
    TurnComplete,
)
from assistant.session import MemoryResumptionStore, NoServerTools, SavedSession, SqliteResumptionStore
from assistant.session.history import ConversationLog
from assistant.session.pipe import PipeClosed, pipe
from assistant.session.queues import FlowQueue, QueueClosed
from assistant.session.tools import merge_server_tools


class TestFlowQueue:
    async def test_media_gives_way_oldest_first_and_is_counted(self) -> None:
        queue: FlowQueue[str] = FlowQueue(3, kind=lambda item: item[0])
        await queue.put("a1", droppable=True)
        await queue.put("c1")
        await queue.put("a2", droppable=True)
        await queue.put("a3", droppable=True)  # full: a1 goes
        await queue.put("c2")  # full: a2 goes
        assert [await queue.get() for _ in range(3)] == ["c1", "a3", "c2"]
        assert queue.dropped == {"a": 2}
        assert queue.high_water == 3

    async def test_control_waits_for_room_instead_of_dropping(self) -> None:
        queue: FlowQueue[str] = FlowQueue(2)
        await queue.put("c1")
        await queue.put("c2")
        blocked = asyncio.create_task(queue.put("c3"))
        await asyncio.sleep(0)
        assert not blocked.done()
        assert await queue.get() == "c1"
        await blocked
        assert [await queue.get(), await queue.get()] == ["c2", "c3"]
        assert not queue.dropped

    async def test_media_also_waits_when_only_control_is_queued(self) -> None:
        queue: FlowQueue[str] = FlowQueue(1)
        await queue.put("c1")
        blocked = asyncio.create_task(queue.put("a1", droppable=True))
        await asyncio.sleep(0)
        assert not blocked.done()
        await queue.get()
        await blocked
        assert await queue.get() == "a1"

    async def test_discard_and_close(self) -> None:
        queue: FlowQueue[str] = FlowQueue(10)
        for item in ["a1", "t", "a2"]:
            await queue.put(item, droppable=item.startswith("a"))
        assert queue.discard(lambda item: item.startswith("a")) == 2
        queue.close()
        assert await queue.get() == "t"
        with pytest.raises(QueueClosed):
            await queue.get()
        with pytest.raises(QueueClosed):
            await queue.put("late")

    async def test_the_consumer_is_idle_only_while_it_waits_on_an_empty_open_queue(self) -> None:
        queue: FlowQueue[str] = FlowQueue(10)
        assert not queue.consumer_idle  # nobody waits in get yet
        consumer = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        assert queue.consumer_idle  # write-through now would be next in line
        await queue.put("a")
        assert not queue.consumer_idle  # woken, but "a" is still ahead of anything new
        assert await consumer == "a"
        assert not queue.consumer_idle  # busy with "a" (a send in progress)
        waiting = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        queue.close()
        assert not queue.consumer_idle
        with pytest.raises(QueueClosed):
            await waiting


class TestPipe:
    async def test_send_now_takes_a_frame_while_there_is_room_and_the_pipe_is_open(self) -> None:
        server, client = pipe(maxsize=2)
        assert server.send_now(b"1") and server.send_now(b"2")
        assert not server.send_now(b"3")  # full: the caller queues it and waits in send
        assert await client.recv() == b"1"
        assert server.send_now(b"3")
        await client.close(1000, "bye")
        with pytest.raises(PipeClosed):
            await server.recv()
        assert not server.send_now(b"4")  # closed: ``send`` raises, so the session hears of it


SAVED = SavedSession(
    setup={"model": "m"}, history=[{"role": "user", "parts": [{"text": "hi"}]}], backend="local", turns=1
)


async def test_sqlite_store_survives_a_restart_and_expires(tmp_path: Path) -> None:
    now = [100.0]
    store = SqliteResumptionStore(tmp_path / "s.sqlite3", clock=lambda: now[0])
    await store.save("h1", SAVED, ttl_s=10)
    await store.aclose()
    reopened = SqliteResumptionStore(tmp_path / "s.sqlite3", clock=lambda: now[0])
    assert await reopened.load("h1") == SAVED
    now[0] += 11
    assert await reopened.load("h1") is None
    await reopened.save("h2", SAVED, ttl_s=10)
    await reopened.delete("h2")
    assert await reopened.load("h2") is None
    await reopened.aclose()


async def test_sqlite_store_closes_after_a_cancelled_save_finishes(tmp_path: Path) -> None:
    """A save cancelled mid-flight (a session torn down at shutdown) still runs before the close, never beside it."""
    store = SqliteResumptionStore(tmp_path / "s.sqlite3")
    saving = asyncio.create_task(store.save("h1", SAVED, ttl_s=60))
    await asyncio.sleep(0)  # the DELETE of expired rows is on the store's thread now
    saving.cancel()
    await store.aclose()
    await store.aclose()  # closing twice is harmless
    reopened = SqliteResumptionStore(tmp_path / "s.sqlite3")
    assert await reopened.load("h1") is None  # cancelled before its INSERT was queued: nothing half-written
    await reopened.aclose()


async def test_memory_store_round_trip() -> None:
    store = MemoryResumptionStore()
    await store.save("h", SAVED, ttl_s=10)
    assert await store.load("h") == SAVED
    assert await store.load("other") is None


def test_history_joins_fragments_into_turns() -> None:
    log = ConversationLog()
    for message in [
        InputTranscript("what "),
        InputTranscript("time is it", finished=True),
        ToolCalls([FunctionCall(id="1", name="get_time")]),
    ]:
        log.server_event(message)
    log.tool_results([FunctionResponse(id="1", name="get_time", response={"output": "12:00"})])
    for message in [
        OutputTranscript("It is "),
        OutputTranscript("noon."),
        TurnComplete(),
    ]:
        log.server_event(message)
    log.client_event(TextInput("and the date?"))
    log.server_event(OutputTranscript("Monday"))
    log.server_event(Interrupted())
    shape = [(turn.role, turn.text() or next(iter(turn.parts[0].model_dump(exclude_none=True)))) for turn in log.turns]
    assert shape == [
        ("user", "what time is it"),
        ("model", "functionCall"),
        ("user", "functionResponse"),
        ("model", "It is noon."),
        ("user", "and the date?"),
        ("model", "Monday"),
    ]


def test_history_snapshot_includes_the_turn_in_progress_and_is_bounded() -> None:
    log = ConversationLog(max_turns=3)
    for index in range(5):
        log.client_event(ClientTurns([Content(role="user", parts=[Part(text=str(index))])], turn_complete=True))
    log.server_event(OutputTranscript("partial"))
    assert [turn.text() for turn in log.snapshot()] == ["3", "4", "partial"]
    log.client_event(ToolResponses([FunctionResponse(id="x", name="f", response={})]))
    assert log.turns[-1].parts[0].function_response is not None


def test_merge_server_tools_keeps_the_clients_and_skips_clashes() -> None:
    class Tools(NoServerTools):
        def declarations(self) -> list[FunctionDeclaration]:
            return [FunctionDeclaration(name="get_time"), FunctionDeclaration(name="mine")]

    setup = Setup.model_validate(
        {"model": "m", "tools": [{"functionDeclarations": [{"name": "mine"}]}, {"googleSearch": {}}]}
    )
    merged = merge_server_tools(setup, Tools())
    assert [d.name for d in merged.function_declarations()] == ["mine", "get_time"]
    assert merged.tools is not None and merged.tools[1].google_search == {}
    assert merge_server_tools(setup, NoServerTools()) is setup
