"""Two ``assistant serve`` processes behind HAProxy, sharing one Redis store: a conversation survives a kill.

Everything here is a real process or server: redis-server, HAProxy with
``deploy/haproxy.cfg``, two ``python -m assistant serve --backend gemini
--store redis://...`` processes, and the Gemini stand-in they both talk to.
The client speaks raw Live JSON over a websocket to the balancer only. The
graceful half (SIGTERM and goAway) belongs to the drain work and is not
tested here.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from assistant.protocol import FunctionCall, ServerMessage
from assistant.server import DEFAULT_LIVE_PATH
from tests.conftest import Certificate
from tests.support.balanced import HAProxy, ServeProcess
from tests.support.fake_gemini import DEFAULT_KEY, FakeConnection, FakeGemini
from tests.support.redis_server import RedisServer, free_port
from tests.test_gemini_conversations import MODEL

TIMER_S = 6  # long enough for the client to move to the other process before it fires


async def next_with(ws: ClientConnection, field: str, timeout: float = 30.0) -> dict[str, object]:
    """The next server message that has ``field`` (camelCase), skipping audio and the rest."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if field in message:
                return message[field]  # type: ignore[no-any-return]


async def heard(ws: ClientConnection) -> str:
    """The model's words of one turn, up to turnComplete."""
    words = []
    async with asyncio.timeout(30):
        while True:
            content = json.loads(await ws.recv()).get("serverContent", {})
            words.append(content.get("outputTranscription", {}).get("text", ""))
            if content.get("turnComplete"):
                return "".join(words)


async def open_session(lb_port: int, handle: str | None = None) -> ClientConnection:
    ws = await connect(f"ws://127.0.0.1:{lb_port}{DEFAULT_LIVE_PATH}")
    resumption = {"handle": handle} if handle else {}
    await ws.send(json.dumps({"setup": {"model": MODEL, "sessionResumption": resumption}}))
    await next_with(ws, "setupComplete")
    return ws


def holder(processes: list[ServeProcess]) -> list[str]:
    """Which processes hold a live session now, by their own /metrics."""
    return [p.name for p in processes if p.metric("assistant_sessions_active") > 0]


@pytest.mark.slow  # four real processes start; about a minute on two busy cores
async def test_a_conversation_survives_its_process_being_killed_behind_the_balancer(
    tls_certificate: Certificate, redis_server: RedisServer, tmp_path: Path
) -> None:
    moved_at: list[float] = []
    fired_at: list[float] = []
    upstream_handles: list[str | None] = []

    async def sets_a_timer(c: FakeConnection) -> None:
        assert await c.text() == "set a tea timer"
        await c.send(ServerMessage.calls([FunctionCall(id="t1", name="set_timer", args={"seconds": TIMER_S})]))
        started = (await c.next("toolResponse")).tool_response
        assert started is not None and started.function_responses[0].will_continue
        upstream_handles.append(await c.reply("Timer set."))

    async def hears_the_timer_on_the_other_process(c: FakeConnection) -> None:
        assert c.presented_handle == upstream_handles[0]  # the Gemini state came through Redis
        fired = (await c.next("toolResponse", timeout=TIMER_S + 20)).tool_response
        fired_at.append(time.monotonic())
        assert fired is not None
        [response] = fired.function_responses
        assert (response.id, response.name, (response.response or {}).get("output", {}).get("status")) == (
            "t1",
            "set_timer",
            "fired",
        )
        upstream_handles.append(await c.reply("Your tea is ready."))

    async def goes_on_after_the_kill(c: FakeConnection) -> None:
        assert c.presented_handle == upstream_handles[1]
        await c.exchange("thanks", "You're welcome.")

    scripts = [sets_a_timer, hears_the_timer_on_the_other_process, goes_on_after_the_kill]
    async with FakeGemini(tls_certificate, scripts) as fake:
        env = {**os.environ, "GEMINI_API_KEY": DEFAULT_KEY, "SSL_CERT_FILE": str(tls_certificate.cert)}
        for name in ("GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI", "ASSISTANT_STORE"):
            env.pop(name, None)
        options = ("--backend", "gemini", "--gemini-base-url", fake.base_url, "--store", redis_server.url)
        processes = [ServeProcess(name, tmp_path / name, env, *options) for name in ("one", "two")]
        await asyncio.gather(*(p.start() for p in processes))
        balancer = HAProxy(free_port(), [p.port for p in processes])
        await balancer.start()
        try:
            first = await open_session(balancer.port)
            [first_holder] = holder(processes)
            await first.send(json.dumps({"realtimeInput": {"text": "set a tea timer"}}))
            assert await heard(first) == "Timer set."
            handle = (await next_with(first, "sessionResumptionUpdate"))["newHandle"]
            # The phone switches networks: it reconnects before the old connection is noticed gone,
            # so the balancer (least connections) sends it to the other process.
            second = await open_session(balancer.port, handle)  # type: ignore[arg-type]
            moved_at.append(time.monotonic())
            assert sorted(holder(processes)) == ["one", "two"]
            await first.close()
            [second_holder] = [p for p in processes if p.name != first_holder]
            assert await heard(second) == "Your tea is ready."  # fired on the first process, heard on the second
            assert fired_at[0] > moved_at[0]  # live, not held for a later resumption
            handle = (await next_with(second, "sessionResumptionUpdate"))["newHandle"]

            second_holder.kill()
            try:
                await asyncio.wait_for(second.recv(), 10)
                raise AssertionError("the connection outlived its process")
            except ConnectionClosed:
                pass
            third = await open_session(balancer.port, handle)  # type: ignore[arg-type]
            assert holder([p for p in processes if p is not second_holder]) == [first_holder]
            await third.send(json.dumps({"realtimeInput": {"text": "thanks"}}))
            assert await heard(third) == "You're welcome."
            await third.close()
            survivor = next(p for p in processes if p.name == first_holder)
            down = f"assistants/assistant{processes.index(second_holder) + 1} is DOWN"
            async with asyncio.timeout(10):  # the /healthz checks take the dead process out
                while not any(down in line for line in balancer.log):
                    await asyncio.sleep(0.1)
            assert any("resumed after 2 turns" in line for line in survivor.log), "\n".join(survivor.log)
            fake.check()
        finally:
            await balancer.stop()
            for process in processes:
                await process.stop()
