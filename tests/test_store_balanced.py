"""Two ``assistant serve`` processes behind HAProxy, sharing one Redis store: a conversation survives a kill.

Everything here is a real process or server: redis-server, HAProxy with
``deploy/haproxy.cfg``, two ``python -m assistant serve --backend gemini
--store redis://...`` processes, and the Gemini stand-in they both talk to.
The client speaks raw Live JSON over a websocket to the balancer only. The
process holding the conversation goes away both ways: SIGKILL (the client
notices the broken connection) and SIGTERM (``--drain-seconds``: goAway, a
final handle, close 1001), and the conversation goes on on the other one.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from assistant.protocol import FunctionCall, ServerMessage
from assistant.server import DEFAULT_LIVE_PATH
from tests.conftest import Certificate
from tests.support.balanced import HAProxy, ServeProcess
from tests.support.browser import chromium
from tests.support.fake_gemini import DEFAULT_KEY, FakeConnection, FakeGemini, Script
from tests.support.redis_server import RedisServer, free_port
from tests.test_gemini_conversations import MODEL
from tests.test_web_scripted import start_talking

TIMER_S = 6  # long enough for the client to move to the other process before it fires
DRAIN_S = 2


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


@asynccontextmanager
async def deployment(
    tls_certificate: Certificate,
    redis_server: RedisServer,
    tmp_path: Path,
    scripts: Sequence[Script],
    *options: str,
) -> AsyncIterator[tuple[list[ServeProcess], HAProxy]]:
    """The Gemini stand-in playing ``scripts``, two ``assistant serve`` processes on one Redis, HAProxy before them."""
    async with FakeGemini(tls_certificate, scripts) as fake:
        env = {**os.environ, "GEMINI_API_KEY": DEFAULT_KEY, "SSL_CERT_FILE": str(tls_certificate.cert)}
        for name in ("GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI", "ASSISTANT_STORE"):
            env.pop(name, None)
        serve = ("--backend", "gemini", "--gemini-base-url", fake.base_url, "--store", redis_server.url, *options)
        processes = [ServeProcess(name, tmp_path / name, env, *serve) for name in ("one", "two")]
        await asyncio.gather(*(p.start() for p in processes))
        balancer = HAProxy(free_port(), [p.port for p in processes])
        await balancer.start()
        try:
            yield processes, balancer
            fake.check()
        finally:
            await balancer.stop()
            for process in processes:
                await process.stop()


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
    async with deployment(tls_certificate, redis_server, tmp_path, scripts) as (processes, balancer):
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


async def until_closed(ws: ClientConnection, timeout: float = 30.0) -> tuple[list[dict[str, object]], int | None]:
    """Every message the server sends before it closes the connection, and its close code."""
    messages = []
    async with asyncio.timeout(timeout):
        try:
            while True:
                messages.append(json.loads(await ws.recv()))
        except ConnectionClosed:
            pass
    return messages, ws.close_code


@pytest.mark.slow  # four real processes start; about a minute on two busy cores
async def test_a_conversation_survives_its_process_being_drained_behind_the_balancer(
    tls_certificate: Certificate, redis_server: RedisServer, tmp_path: Path
) -> None:
    upstream_handles: list[str | None] = []

    async def sets_a_timer(c: FakeConnection) -> None:
        assert await c.text() == "set a tea timer"
        await c.send(ServerMessage.calls([FunctionCall(id="t1", name="set_timer", args={"seconds": TIMER_S})]))
        await c.next("toolResponse")
        upstream_handles.append(await c.reply("Timer set."))

    async def is_drained(c: FakeConnection) -> None:
        assert c.presented_handle == upstream_handles[0]
        await c.wait_closed()  # by the draining process

    async def goes_on_after_the_drain(c: FakeConnection) -> None:
        fired = (await c.next("toolResponse", timeout=TIMER_S + 20)).tool_response
        assert fired is not None
        [response] = fired.function_responses
        assert (response.id, (response.response or {}).get("output", {}).get("status")) == ("t1", "fired")
        await c.reply("Your tea is ready.")
        await c.exchange("thanks", "You're welcome.")

    scripts = [sets_a_timer, is_drained, goes_on_after_the_drain]
    drain = ("--drain-seconds", str(DRAIN_S))
    async with deployment(tls_certificate, redis_server, tmp_path, scripts, *drain) as (processes, balancer):
        first = await open_session(balancer.port)
        [timer_holder] = [p for p in processes if p.name in holder(processes)]
        await first.send(json.dumps({"realtimeInput": {"text": "set a tea timer"}}))
        assert await heard(first) == "Timer set."
        handle = (await next_with(first, "sessionResumptionUpdate"))["newHandle"]
        second = await open_session(balancer.port, handle)  # type: ignore[arg-type]
        await first.close()  # the conversation now lives on the other process; the timer runs on this one
        [drained] = [p for p in processes if p is not timer_holder]
        await eventually_holder(processes, [drained.name])

        drained.terminate()  # a deploy restarts the process holding the conversation
        messages, code = await until_closed(second)
        assert code == 1001
        assert "goAway" in messages[0], messages
        handles = [m["sessionResumptionUpdate"] for m in messages if "sessionResumptionUpdate" in m]
        final = handles[-1]["newHandle"]  # type: ignore[index]
        assert final and handles[-1]["resumable"]  # type: ignore[index]
        third = await open_session(balancer.port, final)  # through the balancer, to the process that stays
        assert holder([timer_holder]) == [timer_holder.name]
        assert await heard(third) == "Your tea is ready."  # the timer set before the drain still speaks
        await third.send(json.dumps({"realtimeInput": {"text": "thanks"}}))
        assert await heard(third) == "You're welcome."
        await third.close()
        assert await drained.exit_code() == 0, "\n".join(drained.log)
        assert any("goAway" in line for line in drained.log), "\n".join(drained.log)


async def eventually_holder(processes: list[ServeProcess], names: list[str]) -> None:
    """Wait until exactly ``names`` hold sessions (a closed connection ends its session a moment later)."""
    async with asyncio.timeout(10):
        while sorted(holder(processes)) != names:
            await asyncio.sleep(0.05)


@pytest.mark.slow  # four real processes and Chromium start
async def test_the_page_conversation_survives_its_process_being_drained_behind_the_balancer(
    tls_certificate: Certificate, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The browser page, served and connected through HAProxy, moves on the goAway of the drained process."""

    upstream_handles: list[str | None] = []

    async def before_the_drain(c: FakeConnection) -> None:
        upstream_handles.append(await c.exchange("Hi", "Hello."))
        await c.wait_closed()  # by the draining process

    async def after_the_drain(c: FakeConnection) -> None:
        assert c.presented_handle == upstream_handles[0]  # resumed, not started afresh
        assert await c.text(timeout=60) == "What did I say first?"
        await c.reply("You said hi.")

    drain = ("--drain-seconds", str(DRAIN_S))
    scripts = [before_the_drain, after_the_drain]
    async with deployment(tls_certificate, redis_server, tmp_path, scripts, *drain) as (processes, balancer):
        async with chromium(f"http://127.0.0.1:{balancer.port}/") as browsing:
            page = browsing.page
            await start_talking(browsing)
            await page.fill("#text-input", "Hi")
            await page.press("#text-input", "Enter")
            before = await browsing.wait_for_stats(lambda s: s["handle"], "the first turn's handle")
            [drained] = [p for p in processes if p.name in holder(processes)]
            drained.terminate()
            assert await drained.exit_code() == 0, "\n".join(drained.log)
            await browsing.wait_for_stats(
                lambda s: s["state"] == "open" and s["sessionId"] != before["sessionId"],
                "the page to reconnect through the balancer",
                timeout=60,
            )
            [survivor] = [p for p in processes if p is not drained]
            assert holder([survivor]) == [survivor.name]
            await page.fill("#text-input", "What did I say first?")
            await page.press("#text-input", "Enter")
            await page.locator("#log .message.model").nth(1).wait_for()
            assert await browsing.bubbles("user") == ["Hi", "What did I say first?"]
            assert await browsing.bubbles("model") == ["Hello.", "You said hi."]
            events = await page.locator("#log .event").all_inner_texts()
            assert "The server is moving this conversation to a new connection." in events
            assert "The server no longer knows the previous conversation; starting a new one." not in events
            assert browsing.errors == []
        assert any("resumed after 1 turns" in line for line in survivor.log), "\n".join(survivor.log)
