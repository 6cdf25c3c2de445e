"""Health, readiness, metrics and JSON logs: what operators and load balancers read from a server."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from assistant.logs import SessionLogger, configure_logging
from assistant.protocol import ServerMessage, TextInput
from assistant.server import LiveServer, ServerConfig, ops
from assistant.session.redis_store import RedisConversationStore
from tests.conftest import ServerFactory
from tests.support.redis_server import RedisServer
from tests.support.scripted import ScriptedBackend, ScriptedSession
from tests.test_server_raw import eventually, recv_json, url

Answer = tuple[int, dict[str, str], bytes]


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> Answer:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def get(port: int, path: str, headers: dict[str, str] | None = None) -> Answer:
    return await asyncio.to_thread(http_get, port, path, headers)


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics answer, by name and labels (parsed by prometheus-client's own parser)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


async def echo(s: ScriptedSession) -> None:
    """Answers every text with a model turn (what the session times) and a finished turn."""
    while True:
        text = await s.expect(TextInput, timeout=60)
        s.emit(ServerMessage.model_text(f"echo: {text.text}"), ServerMessage.turn_done())


async def test_health_and_readiness_need_no_key_and_say_nothing_sensitive(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo), api_key="secret-key") as server:
        status, headers, body = await get(server.port, "/healthz")
        assert (status, body) == (200, b"ok\n")
        status, headers, body = await get(server.port, "/readyz")
        assert status == 200 and headers["Content-Type"] == "application/json"
        report = json.loads(body)
        assert report == {"ready": True, "backend": True, "store": True, "draining": False}
        assert all(isinstance(value, bool) for value in report.values())  # no names, addresses or counts
        server.readiness.draining = True  # what a drain sets first
        status, _, body = await get(server.port, "/readyz")
        assert status == 503 and json.loads(body)["draining"] is True
        status, _, body = await get(server.port, "/healthz?key=wrong")
        assert status == 200  # alive is alive, whatever the query says


async def test_metrics_need_the_key_when_the_server_has_one(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo), api_key="secret-key") as server:
        status, _, body = await get(server.port, "/metrics")
        assert status == 401 and b"assistant_" not in body
        status, _, _ = await get(server.port, "/metrics", {"Authorization": "Bearer wrong"})
        assert status == 401
        status, headers, body = await get(server.port, "/metrics", {"Authorization": "Bearer secret-key"})
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
        assert ("assistant_sessions_active", ()) in samples(body)


async def test_metrics_count_sessions_turns_and_latency(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo)) as server:
        _, _, before_body = await get(server.port, "/metrics")
        before = samples(before_body)
        async with connect(url(server)) as ws:
            await ws.send(json.dumps({"setup": {"model": "models/test"}}))
            assert "setupComplete" in await recv_json(ws)
            _, _, during = await get(server.port, "/metrics")
            assert samples(during)[("assistant_sessions_active", ())] == before[("assistant_sessions_active", ())] + 1
            for text in ("one", "two"):
                await ws.send(json.dumps({"realtimeInput": {"text": text}}))
                while "turnComplete" not in json.dumps(await recv_json(ws)):
                    pass
        await eventually(lambda: not server.sessions)
        _, _, after_body = await get(server.port, "/metrics")
    after = samples(after_body)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("assistant_sessions_total", backend="scripted") == 1
    assert grew("assistant_sessions_active") == 0
    assert grew("assistant_turns_total", outcome="complete") == 2
    assert grew("assistant_stage_latency_seconds_count", stage="first_reply") == 2
    assert grew("assistant_stage_latency_seconds_sum", stage="first_reply") >= 0
    assert ("process_resident_memory_bytes", ()) in after  # the process's own CPU and memory, for capacity


async def test_readiness_follows_the_redis_store(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "STORE_PROBE_S", 0.1)
    store = RedisConversationStore(redis_server.url)
    await store.start()
    server = LiveServer(
        ServerConfig(port=0), ScriptedBackend(echo), store=store.resumption, late_results=store.late_results
    )
    await server.start()
    try:
        assert (await get(server.port, "/readyz"))[0] == 200
        _, _, body = await get(server.port, "/metrics")
        errors_before = samples(body)[("assistant_store_errors_total", ())]
        redis_server.stop()
        await eventually(lambda: not server.readiness.store_reachable)
        status, _, body = await get(server.port, "/readyz")
        assert status == 503 and json.loads(body) == {
            "ready": False,
            "backend": True,
            "store": False,
            "draining": False,
        }
        assert (await get(server.port, "/healthz"))[0] == 200  # alive, only not ready
        _, _, body = await get(server.port, "/metrics")
        assert samples(body)[("assistant_store_errors_total", ())] > errors_before
        redis_server.start()
        await eventually(lambda: server.readiness.store_reachable)
        assert (await get(server.port, "/readyz"))[0] == 200  # back by itself
    finally:
        await server.stop()
        await store.aclose()


def test_json_logs_are_one_object_a_line_with_the_session_as_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("info", "json")
    log = SessionLogger(logging.getLogger("assistant.session"), "ab12cd34", "127.0.0.1:5555", "gemini")
    log.info("turn %d complete", 3)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("session failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "INFO" and first["logger"] == "assistant.session" and "time" in first
    assert first["message"] == "[ab12cd34 127.0.0.1:5555 gemini] turn 3 complete"
    assert (first["session"], first["peer"], first["backend"]) == ("ab12cd34", "127.0.0.1:5555", "gemini")
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exc_info"]
    with pytest.raises(ValueError, match="use text or json"):
        configure_logging("info", "xml")
