"""Raw websocket clients against ``LiveServer``: Pastra's JSON, paths, origins, bad input, stalls."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from assistant.protocol import AudioChunk, ClientTurns, ServerMessage, TextInput, ToolResponses, VideoFrame
from assistant.server import DEFAULT_LIVE_PATH, LiveServer, ServerConfig
from assistant.server.app import HANDSHAKE_TIMEOUT_S
from assistant.session import MemoryResumptionStore
from tests.conftest import ServerFactory
from tests.support.scripted import ScriptedBackend, ScriptedSession

JPEG = b"\xff\xd8\xff\xe0" + b"\x10" * 32
PCM = b"\x01\x00" * 2048  # Pastra's 2048-sample worklet chunk


def url(server: LiveServer, path: str = DEFAULT_LIVE_PATH, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}{path}{query}"


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, object]:
    frame = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(frame, bytes), "the server sends binary frames, as Gemini does"
    parsed: dict[str, object] = json.loads(frame)
    return parsed


async def closed_with(ws: ClientConnection, timeout: float = 5.0) -> tuple[int | None, str]:
    with pytest.raises(ConnectionClosed) as caught:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    received = caught.value.rcvd
    return (received.code, received.reason) if received else (None, "")


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for ``condition`` (the server finishing a session it was told about)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def echo(s: ScriptedSession) -> None:
    """Answers every text with a turn: enough to prove a session is alive."""
    while True:
        text = await s.expect(TextInput, timeout=60)
        s.emit(ServerMessage.output_transcript(f"echo: {text.text}"), ServerMessage.turn_done())


async def test_pastra_page_json_works_unchanged(live_server: ServerFactory) -> None:
    async def script(s: ScriptedSession) -> None:
        assert s.request.setup.voice_name() == "Puck"
        assert s.request.setup.response_modalities() == ["AUDIO"]
        chunk = await s.expect(AudioChunk, skip_audio=False)
        assert chunk.pcm == PCM and chunk.sample_rate == 16000
        assert (await s.expect(VideoFrame)).image == JPEG
        end = await s.expect(ClientTurns)
        assert end.turns == [] and end.turn_complete  # Pastra's "end of turn"
        s.emit(ServerMessage.model_audio(b"\x00\x01" * 1200), ServerMessage.turn_done())
        [response] = (await s.expect(ToolResponses)).responses
        assert response.response == {"output": {"temperature": 21}}
        await s.closed.wait()

    backend = ScriptedBackend(script)
    # Pastra's page runs on its own dev server, so the operator allows that origin.
    async with live_server(backend, api_key="pastra-key", allowed_origins=["http://localhost:8000"]) as server:
        path = "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContent"
        async with connect(url(server, path, "?key=pastra-key"), origin="http://localhost:8000") as ws:  # type: ignore[arg-type]
            await ws.send(
                json.dumps(
                    {
                        "setup": {
                            "model": "models/gemini-2.0-flash-exp",
                            "generation_config": {
                                "response_modalities": ["audio"],
                                "speech_config": {"voice_config": {"prebuilt_voice_config": {"voice_name": "Puck"}}},
                            },
                        }
                    }
                )
            )
            assert await recv_json(ws) == {"setupComplete": {"sessionId": backend.sessions[0].request.session_id}}
            b64 = base64.b64encode(PCM).decode()
            await ws.send(json.dumps({"realtime_input": {"media_chunks": [{"mime_type": "audio/pcm", "data": b64}]}}))
            await ws.send(
                json.dumps({"client_content": {"turns": [{"role": "user", "parts": []}], "turn_complete": False}})
            )
            jpeg = base64.b64encode(JPEG).decode()
            await ws.send(json.dumps({"realtime_input": {"media_chunks": [{"mime_type": "image/jpeg", "data": jpeg}]}}))
            await ws.send(
                json.dumps({"client_content": {"turns": [{"role": "user", "parts": []}], "turn_complete": True}})
            )
            audio = await recv_json(ws)
            part = audio["serverContent"]["modelTurn"]["parts"][0]  # type: ignore[index]
            assert part["inlineData"]["mimeType"] == "audio/pcm;rate=24000"
            assert base64.b64decode(part["inlineData"]["data"]) == b"\x00\x01" * 1200
            assert await recv_json(ws) == {"serverContent": {"turnComplete": True}}
            await ws.send(
                json.dumps(
                    {
                        "tool_response": {
                            "function_responses": [
                                {"id": "x", "name": "get_weather", "response": {"output": {"temperature": 21}}}
                            ]
                        }
                    }
                )
            )
            # The call id was never issued, so the session drops the answer and stays open.
            await asyncio.sleep(0.1)
            assert backend.sessions[0].received[-1] == ClientTurns([], turn_complete=True)
        backend.check()


@pytest.mark.parametrize(
    "path",
    [
        "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContent",
        "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
        "/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent",
        "//ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent",
        "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained",
    ],
)
async def test_live_paths(live_server: ServerFactory, path: str) -> None:
    async with live_server(ScriptedBackend(echo)) as server, connect(url(server, path)) as ws:
        await ws.send(json.dumps({"setup": {"model": "m"}}))
        assert "setupComplete" in await recv_json(ws)


async def test_stop_does_not_wait_for_a_connection_that_never_sent_its_request() -> None:
    # An HTTP client's idle keep-alive connection held the stop for the 10 s handshake timeout.
    server = LiveServer(ServerConfig(port=0), ScriptedBackend(echo), store=MemoryResumptionStore())
    await server.start()
    _, idle = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        async with connect(url(server)) as ws:  # a conversation beside it still gets its 1001
            await ws.send(json.dumps({"setup": {"model": "m"}}))
            assert "setupComplete" in await recv_json(ws)
            await asyncio.wait_for(server.stop(), HANDSHAKE_TIMEOUT_S / 2)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1001
    finally:
        idle.close()


async def test_unknown_path_is_404(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo)) as server:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(
                url(server, "/ws/google.ai.generativelanguage.v2.GenerativeService.BidiGenerateContent")
            ):
                pass
        assert caught.value.response.status_code == 404


@pytest.mark.parametrize(
    ("origin", "allowed", "status"),
    [
        ("http://localhost:5173", [], 403),  # another loopback origin is another site
        ("http://127.0.0.1:3000", [], 403),
        ("https://evil.example", [], 403),
        ("https://app.example", ["https://app.example"], None),
        ("https://other.example", ["*"], None),
    ],
)
async def test_origin_allowlist(
    live_server: ServerFactory, origin: str, allowed: list[str], status: int | None
) -> None:
    async with live_server(ScriptedBackend(echo), allowed_origins=allowed) as server:
        try:
            async with connect(url(server), origin=origin) as ws:  # type: ignore[arg-type]
                await ws.send(json.dumps({"setup": {"model": "m"}}))
                assert "setupComplete" in await recv_json(ws)
                outcome = None
        except InvalidStatus as exc:
            outcome = exc.response.status_code
        assert outcome == status


async def test_same_origin_page_is_allowed(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo), host="127.0.0.1", allowed_hosts=["assistant.lan"]) as server:
        # A page served by this server under a LAN name (--allow-host): its Origin matches the Host it asked for.
        sock = socket.create_connection(("127.0.0.1", server.port))
        lan_url = f"ws://assistant.lan:{server.port}{DEFAULT_LIVE_PATH}"
        async with connect(lan_url, sock=sock, origin=f"http://assistant.lan:{server.port}") as ws:  # type: ignore[arg-type]
            await ws.send(json.dumps({"setup": {"model": "m"}}))
            assert "setupComplete" in await recv_json(ws)


@pytest.mark.parametrize(
    ("headers", "query", "accepted"),
    [
        ({"x-goog-api-key": "k1"}, "", True),
        ({}, "?key=k1", True),
        ({"Authorization": "Bearer k1"}, "", True),
        ({}, "", False),
        ({"x-goog-api-key": "k2"}, "", False),
        ({}, "?key=", False),
    ],
)
async def test_access_key(live_server: ServerFactory, headers: dict[str, str], query: str, accepted: bool) -> None:
    async with live_server(ScriptedBackend(echo), api_key="k1") as server:
        async with connect(url(server, query=query), additional_headers=headers) as ws:
            await ws.send(json.dumps({"setup": {"model": "m"}}))
            if accepted:
                assert "setupComplete" in await recv_json(ws)
            else:
                code, reason = await closed_with(ws)
                assert code == 1008 and "API key not valid" in reason


BAD_INPUT = [
    pytest.param("not json at all", 1007, "not valid JSON", id="not-json"),
    pytest.param("[1, 2, 3]", 1007, "message is an array", id="json-array"),
    pytest.param('{"realtimeInput": {"text": "a"}, "clientContent": {}}', 1007, "exactly one of", id="two-fields"),
    pytest.param('{"surprise": {}}', 1007, 'unknown field "surprise"', id="unknown-field"),
    pytest.param(
        '{"realtimeInput": {"audio": {"data": "%%%", "mimeType": "audio/pcm"}}}',
        1007,
        "not valid base64",
        id="bad-base64",
    ),
    pytest.param(
        '{"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "audio/wav"}}}',
        1007,
        "realtimeInput.audio: mimeType audio/wav is not supported; send audio/pcm;rate=16000",
        id="wrong-mime",
    ),
    pytest.param('{"setup": {"model": "again"}}', 1007, "setup was already sent", id="second-setup"),
    pytest.param(b"\x00\xff\xfe\x80garbage", 1007, "binary frame is not UTF-8 JSON", id="binary-garbage"),
    pytest.param(
        b"x" * (20 * 1024 * 1024), 1009, "message too large: this server takes at most 8388608 bytes", id="20MB-frame"
    ),
]


@pytest.mark.parametrize(("frame", "code", "reason"), BAD_INPUT)
async def test_bad_input_closes_only_its_own_session(
    live_server: ServerFactory, frame: str | bytes, code: int, reason: str
) -> None:
    async with live_server(ScriptedBackend(echo)) as server:
        async with connect(url(server)) as bystander:
            await bystander.send(json.dumps({"setup": {"model": "m"}}))
            await recv_json(bystander)
            # Not "async with": the server closes this one, and closing a client whose
            # 20 MB send was cut short trips over websockets' own teardown.
            ws = await connect(url(server), max_size=None)
            await ws.send(json.dumps({"setup": {"model": "m"}}))
            await recv_json(ws)
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame)
            got_code, got_reason = await closed_with(ws)
            assert got_code == code and reason in got_reason
            # The other session on the same server carries on.
            await bystander.send(json.dumps({"realtimeInput": {"text": "still there?"}}))
            assert await recv_json(bystander) == {
                "serverContent": {"outputTranscription": {"text": "echo: still there?"}}
            }
            assert await recv_json(bystander) == {"serverContent": {"turnComplete": True}}
        await eventually(lambda: not server.sessions)


async def test_frame_errors_close_with_the_projects_words(live_server: ServerFactory) -> None:
    """websockets' frame parser fails the connection; the reason is the server's, not the library's."""
    async with live_server(ScriptedBackend(echo)) as server, connect(url(server)) as ws:
        await ws.send(json.dumps({"setup": {"model": "m"}}))
        await recv_json(ws)
        await ws.send(b'{"realtimeInput": {"text": "\xff"}}', text=True)  # a text frame that is not UTF-8
        assert await closed_with(ws) == (1007, "a text message is not valid UTF-8")


async def test_audio_before_setup(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo)) as server, connect(url(server)) as ws:
        await ws.send(json.dumps({"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "audio/pcm"}}}))
        code, reason = await closed_with(ws)
        assert code == 1007 and reason == "realtimeInput before setup; the first message must be setup"


async def test_static_files(live_server: ServerFactory, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>hi</title>")
    (tmp_path / "app.js").write_text("export const x = 1;")
    (tmp_path.parent / "secret.txt").write_text("nope")
    async with live_server(ScriptedBackend(echo), static_dir=tmp_path) as server:

        async def get(path: str) -> tuple[int, dict[str, str], bytes]:
            r, w = await asyncio.open_connection("127.0.0.1", server.port)
            w.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            raw = await r.read()
            w.close()
            head, _, body = raw.partition(b"\r\n\r\n")
            status_line, *header_lines = head.decode().split("\r\n")
            headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
            return int(status_line.split()[1]), headers, body

        status, headers, body = await get("/")
        assert status == 200 and body.startswith(b"<!doctype html>") and headers["content-type"].startswith("text/html")
        status, headers, _ = await get("/app.js")
        assert status == 200 and "javascript" in headers["content-type"]
        assert (await get("/../secret.txt"))[0] == 404
        assert (await get("/%2e%2e/secret.txt"))[0] == 404
        assert (await get("/missing.css"))[0] == 404


async def test_a_stalled_client_does_not_grow_server_memory(live_server: ServerFactory) -> None:
    """The backend streams far more audio than the client reads; memory stays bounded."""
    chunk = ServerMessage.model_audio(b"\x11\x22" * 4800)  # 200 ms, ~13 kB on the wire
    total_chunks = 2000  # ~26 MB on the wire that nobody reads

    async def flood(s: ScriptedSession) -> None:
        for _ in range(total_chunks):
            await s.stream(chunk)
        s.emit(ServerMessage.turn_done())
        await s.closed.wait()

    backend = ScriptedBackend(flood)
    async with live_server(backend) as server:
        async with connect(url(server), max_queue=4, close_timeout=0.5) as ws:
            await ws.send(json.dumps({"setup": {"model": "m"}}))
            await recv_json(ws)
            tracemalloc.start()
            try:
                baseline = tracemalloc.get_traced_memory()[0]
                peak_growth = 0
                session = next(iter(server.sessions))
                while backend.sessions[0]._out.qsize() or session.outbound.dropped["reply audio"] < total_chunks / 2:
                    await asyncio.sleep(0.05)
                    peak_growth = max(peak_growth, tracemalloc.get_traced_memory()[0] - baseline)
                    if session.stats.turns:
                        break
            finally:
                tracemalloc.stop()
            assert session.outbound.high_water <= session.outbound.maxsize
            assert session.outbound.dropped["reply audio"] > total_chunks / 2
            # The queue holds at most 250 chunks (~2.4 MB of PCM) however much went through.
            assert peak_growth < 8 * 1024 * 1024, f"server memory grew by {peak_growth / 1e6:.1f} MB"


async def test_persona_is_asked_for_in_the_url_or_a_header(live_server: ServerFactory) -> None:
    from tests.test_session import profiles

    backend = ScriptedBackend(echo)
    async with live_server(backend, profiles=profiles) as server:
        async with connect(url(server, query="?persona=owl")) as ws:
            await ws.send(json.dumps({"setup": {"model": "m"}}))
            await recv_json(ws)
        async with connect(url(server), additional_headers={"x-assistant-persona": "hawk"}) as ws:
            await ws.send(json.dumps({"setup": {"model": "m"}}))
            assert await closed_with(ws) == (1008, "unknown persona 'hawk'; this server has: owl")
    instruction = backend.sessions[0].request.setup.system_instruction
    assert instruction is not None and instruction.text() == "You are an owl."


async def test_clients_that_ask_see_server_tool_activity(live_server: ServerFactory) -> None:
    from assistant.protocol import FunctionCall, ToolResponses
    from tests.test_session import EchoTools

    async def script(s: ScriptedSession) -> None:
        await s.expect(TextInput)
        s.emit(ServerMessage.calls([FunctionCall(id="e1", name="echo", args={"q": 1})]))
        await s.expect(ToolResponses)
        s.emit(ServerMessage.turn_done())
        await s.closed.wait()

    async with live_server(ScriptedBackend(script), tools=EchoTools()) as server:
        for query, expected in (("?events=tools", ["running", "done", "turn"]), ("", ["turn"])):
            async with connect(url(server, query=query)) as ws:
                await ws.send(json.dumps({"setup": {"model": "m"}}))
                await recv_json(ws)
                await ws.send(json.dumps({"realtimeInput": {"text": "go"}}))
                seen = []
                while not seen or seen[-1] != "turn":
                    message = await recv_json(ws)
                    activity = message.get("serverToolActivity")
                    seen.append(activity["state"] if isinstance(activity, dict) else "turn")
                    if isinstance(activity, dict) and activity["state"] == "done":
                        assert activity == {
                            "id": "e1",
                            "name": "echo",
                            "state": "done",
                            "response": {"output": {"q": 1}},
                        }
                assert seen == expected
