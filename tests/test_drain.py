"""Graceful drain: a stopping server warns its clients, lets turns finish and hands over handles.

Real websockets against ``LiveServer`` with a scripted backend: the order of
what a client sees (goAway, the rest of the turn, a final handle, 1001), the
refusal of new connections while draining, and a restarted server on the same
SQLite store that continues the conversation, an unanswered client call
included.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from assistant.protocol import CloseCode, FunctionCall, ServerMessage, TextInput, ToolResponses
from assistant.protocol.models import GoAway
from assistant.server import LiveServer
from assistant.session import SqliteResumptionStore
from assistant.session.session import DRAINED_REASON
from tests.conftest import ServerFactory
from tests.support.scripted import ScriptedBackend, ScriptedSession
from tests.test_server_raw import closed_with, recv_json, url

SETUP = {
    "setup": {
        "model": "models/test",
        "tools": [{"functionDeclarations": [{"name": "turn_on_lights"}]}],
        "sessionResumption": {},
    }
}
REPLY = b"\x05\x06" * 2400  # 100 ms at 24 kHz


async def open_session(server: LiveServer, setup: object = SETUP) -> ClientConnection:
    ws = await connect(url(server))
    await ws.send(json.dumps(setup))
    assert "setupComplete" in await recv_json(ws)
    return ws


async def until_closed(ws: ClientConnection) -> tuple[list[dict[str, object]], tuple[int | None, str]]:
    """Every message up to the close, and the close code and reason."""
    messages: list[dict[str, object]] = []
    while True:
        try:
            messages.append(await recv_json(ws, timeout=10))
        except Exception:
            break
    return messages, await closed_with(ws)


def kinds(messages: list[dict[str, object]]) -> list[str]:
    out = []
    for message in messages:
        content = message.get("serverContent")
        if isinstance(content, dict):
            out.append("turnComplete" if content.get("turnComplete") else "content")
        else:
            out.extend(message)
    return out


def test_go_away_writes_a_protobuf_duration() -> None:
    assert [GoAway.after(s).time_left for s in (5, 2.5, 0.25, 0, -1)] == ["5s", "2.5s", "0.25s", "0s", "0s"]


async def test_a_drain_lets_the_turn_finish_then_hands_over_a_handle_and_closes_1001(
    live_server: ServerFactory, tmp_path: Path
) -> None:
    draining = asyncio.Event()
    database = tmp_path / "sessions.sqlite3"

    async def story(s: ScriptedSession) -> None:
        assert (await s.expect(TextInput)).text == "tell me a story"
        s.emit(ServerMessage.output_transcript("Once"), ServerMessage.model_audio(REPLY))
        await draining.wait()
        await asyncio.sleep(0.3)  # the reply goes on after the goAway
        s.emit(
            ServerMessage.model_audio(REPLY),
            ServerMessage.output_transcript(" upon a time."),
            ServerMessage.turn_done(),
        )
        await s.closed.wait()

    async def resumed(s: ScriptedSession) -> None:
        assert [(turn.role, turn.text()) for turn in s.request.history] == [
            ("user", "tell me a story"),
            ("model", "Once upon a time."),
        ]
        assert (await s.expect(TextInput)).text == "and then?"
        s.emit(ServerMessage.output_transcript("The end."), ServerMessage.turn_done())
        await s.closed.wait()

    first = ScriptedBackend(story)
    async with live_server(first, store=SqliteResumptionStore(database)) as server:
        ws = await open_session(server)
        await ws.send(json.dumps({"realtimeInput": {"text": "tell me a story"}}))
        heard, spoken = await recv_json(ws), await recv_json(ws)  # the turn is in flight
        assert kinds([heard, spoken]) == ["content", "content"]
        drain = asyncio.create_task(server.drain(3.0))
        draining.set()
        await asyncio.sleep(0.05)
        with pytest.raises(InvalidStatus) as refused:
            await connect(url(server))
        assert refused.value.response.status_code == 503
        assert int(refused.value.response.headers["Retry-After"]) >= 1
        messages, close = await until_closed(ws)
        await asyncio.wait_for(drain, 10)
        assert not server.sessions
    first.check()
    assert messages[0] == {"goAway": {"timeLeft": "3s"}}
    assert kinds(messages) == [
        "goAway",
        "content",
        "content",
        "turnComplete",
        "sessionResumptionUpdate",  # the turn's own handle
        "sessionResumptionUpdate",  # the final one, taken after input stopped
    ]
    assert close == (CloseCode.GOING_AWAY, DRAINED_REASON)
    final = messages[-1]["sessionResumptionUpdate"]
    assert isinstance(final, dict) and final["resumable"] is True

    second = ScriptedBackend(resumed)
    async with live_server(second, store=SqliteResumptionStore(database)) as server:
        resume = {"setup": {**SETUP["setup"], "sessionResumption": {"handle": final["newHandle"]}}}
        ws = await open_session(server, resume)
        await ws.send(json.dumps({"realtimeInput": {"text": "and then?"}}))
        assert kinds([await recv_json(ws), await recv_json(ws)]) == ["content", "turnComplete"]
        await ws.close()
    second.check()


async def test_a_drain_mid_call_saves_the_call_so_the_restarted_server_takes_its_answer(
    live_server: ServerFactory, tmp_path: Path
) -> None:
    database = tmp_path / "sessions.sqlite3"

    async def calls_the_client(s: ScriptedSession) -> None:
        assert (await s.expect(TextInput)).text == "lights on in the kitchen"
        s.emit(ServerMessage.calls([FunctionCall(id="c1", name="turn_on_lights", args={"room": "kitchen"})]))
        await s.closed.wait()

    async def takes_the_answer(s: ScriptedSession) -> None:
        history = [(turn.role, turn.text()) for turn in s.request.history]
        assert history[0] == ("user", "lights on in the kitchen")
        [call] = [part.function_call for part in s.request.history[-1].parts if part.function_call]
        assert call is not None and (call.id, call.name) == ("c1", "turn_on_lights")
        [response] = (await s.expect(ToolResponses)).responses
        assert (response.id, response.response) == ("c1", {"output": "on"})
        s.emit(ServerMessage.output_transcript("The kitchen is lit."), ServerMessage.turn_done())
        await s.closed.wait()

    first = ScriptedBackend(calls_the_client)
    async with live_server(first, store=SqliteResumptionStore(database)) as server:
        ws = await open_session(server)
        await ws.send(json.dumps({"realtimeInput": {"text": "lights on in the kitchen"}}))
        assert "toolCall" in await recv_json(ws)
        started = asyncio.get_running_loop().time()
        drain = asyncio.create_task(server.drain(1.0))
        messages, close = await until_closed(ws)  # the client does not answer in time
        await asyncio.wait_for(drain, 10)
        assert asyncio.get_running_loop().time() - started < 1.0 + 0.5
    first.check()
    assert kinds(messages) == ["goAway", "sessionResumptionUpdate"]
    assert close == (CloseCode.GOING_AWAY, DRAINED_REASON)
    update = messages[-1]["sessionResumptionUpdate"]
    assert isinstance(update, dict) and update["resumable"] is True

    second = ScriptedBackend(takes_the_answer)
    async with live_server(second, store=SqliteResumptionStore(database)) as server:
        resume = {"setup": {**SETUP["setup"], "sessionResumption": {"handle": update["newHandle"]}}}
        ws = await open_session(server, resume)
        answer = {"id": "c1", "name": "turn_on_lights", "response": {"output": "on"}}
        await ws.send(json.dumps({"toolResponse": {"functionResponses": [answer]}}))
        assert kinds([await recv_json(ws), await recv_json(ws), await recv_json(ws)]) == [
            "content",
            "turnComplete",
            "sessionResumptionUpdate",
        ]
        await ws.close()
    second.check()


async def test_a_session_without_resumption_gets_go_away_and_1001_only(live_server: ServerFactory) -> None:
    async def idle_turn(s: ScriptedSession) -> None:
        await s.closed.wait()

    setup = {"setup": {"model": "models/test"}}
    async with live_server(ScriptedBackend(idle_turn)) as server:
        ws = await open_session(server, setup)
        drain = asyncio.create_task(server.drain(5.0))
        messages, close = await until_closed(ws)
        await asyncio.wait_for(drain, 1)  # nothing in flight: no need to wait out the 5 s
    assert messages == [{"goAway": {"timeLeft": "5s"}}]
    assert close == (CloseCode.GOING_AWAY, DRAINED_REASON)
