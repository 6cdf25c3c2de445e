"""Who gets in: Host and Origin checks, the page's cookie, ephemeral tokens, session limits, bad HTTP.

Requests go over raw sockets where the point is what a hostile client can
send (two Host headers, a NUL in the path, a body where none belongs), and
over websockets' own client for handshakes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from assistant.server import DEFAULT_LIVE_PATH, LiveServer
from assistant.server.access import AccessPolicy, certificate_names, default_allowed_hosts, host_name
from assistant.server.admission import TRY_AGAIN_KEY_REASON, SessionLimits
from assistant.server.app import HANDSHAKE_TIMEOUT_S
from assistant.server.tokens import MemoryTokenStore, TokenRefused, TokenRequestError
from assistant.session.redis_store import RedisConversationStore
from tests.conftest import ServerFactory
from tests.support.redis_server import RedisServer
from tests.support.scripted import ScriptedBackend, ScriptedSession
from tests.test_server_raw import closed_with, echo, eventually, recv_json

CONSTRAINED = "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained"
KEY = "k-123"
HOST = "Host: 127.0.0.1"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        parsed: dict[str, object] = json.loads(self.body)
        return parsed


async def raw_http(server: LiveServer, request: bytes) -> Reply:
    """Send ``request`` as written and read the whole answer (the server closes after it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head, f"the server closed without answering {request[:60]!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(status_line.split()[1]), headers, body)


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", *headers, "Connection: close", "", ""]
    return "\r\n".join(lines).encode()


def post_json(path: str, body: object, *headers: str, host: str = "127.0.0.1") -> bytes:
    data = json.dumps(body).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        *headers,
        "Connection: close",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + data


def live_url(server: LiveServer, path: str = DEFAULT_LIVE_PATH, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}{path}{query}"


def named_url(server: LiveServer, name: str) -> str:
    """The Live URL under another name (what a browser sends as Host), for a socket made by ``loopback``."""
    return f"ws://{name}:{server.port}{DEFAULT_LIVE_PATH}"


def loopback(server: LiveServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port))


async def mint(server: LiveServer, body: object, *headers: str) -> Reply:
    return await raw_http(server, post_json("/v1alpha/auth_tokens", body, f"x-goog-api-key: {KEY}", *headers))


async def setup_answer(ws: ClientConnection, setup: Mapping[str, object] | None = None) -> dict[str, object]:
    await ws.send(json.dumps({"setup": setup or {"model": "m"}}))
    return await recv_json(ws)


# -- malformed HTTP -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(get("/%00", "Host: 127.0.0.1"), 400, id="nul-in-path"),
        pytest.param(get("/a%00b.js", "Host: 127.0.0.1"), 400, id="nul-mid-path"),
        pytest.param(get("/%ff%fe", "Host: 127.0.0.1"), 400, id="not-utf8-path"),
        pytest.param(get("/", "Host: 127.0.0.1", "Host: evil.example"), 400, id="two-hosts"),
        pytest.param(get("/", "Host: 127.0.0.1", "Origin: http://a", "Origin: http://b"), 400, id="two-origins"),
        pytest.param(get("/"), 400, id="no-host"),
        pytest.param(
            get(DEFAULT_LIVE_PATH, "Host: 127.0.0.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade"),
            400,
            id="handshake-two-hosts",
        ),
        pytest.param(
            get(DEFAULT_LIVE_PATH, HOST, "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: x"),
            400,
            id="bad-websocket-key",
        ),
        pytest.param(b"HELLO\r\n\r\n", 400, id="not-a-request-line"),
        pytest.param(b"GET / HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n", 400, id="wrong-protocol"),
        pytest.param(b"GET / HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n", 400, id="header-without-colon"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello", 400, id="body-on-get"),
        pytest.param(
            b"POST /v1alpha/auth_tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
            id="chunked",
        ),
        pytest.param(
            b"POST /v1alpha/auth_tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999\r\n\r\n",
            413,
            id="huge-body",
        ),
        pytest.param(get("/", "Host: 127.0.0.1", "X-Long: " + "a" * 9000), 431, id="huge-header"),
    ],
)
async def test_malformed_http_gets_a_4xx_written_here(
    live_server: ServerFactory, request_bytes: bytes, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with live_server(ScriptedBackend(echo)) as server:
        reply = await raw_http(server, request_bytes)
        assert reply.status == status
        assert reply.body.startswith((b"Bad request", b"Bad websocket handshake", b"Request")), reply.body
        # The server still answers afterwards.
        assert (await raw_http(server, get("/personas.json", "Host: 127.0.0.1"))).status == 200
    assert not [record for record in caplog.records if record.exc_info], "no traceback in the log either"


# -- Host and Origin ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed_hosts", "status"),
    [
        ("127.0.0.1:8765", [], 200),
        ("localhost", [], 200),
        ("[::1]:8765", [], 200),
        ("LOCALHOST:1", [], 200),
        ("rebind.evil.example", [], 403),
        ("rebind.evil.example:8765", [], 403),
        ("127.0.0.1.evil.example", [], 403),
        ("10.9.8.7", [], 403),  # an IP this socket was not reached on
        ("assistant.lan:8765", ["assistant.lan"], 200),
        ("anything.example", ["*"], 200),
    ],
)
async def test_host_allowlist_on_http(
    live_server: ServerFactory, host: str, allowed_hosts: list[str], status: int
) -> None:
    async with live_server(ScriptedBackend(echo), allowed_hosts=allowed_hosts) as server:
        reply = await raw_http(server, get("/config.json", f"Host: {host}"))
        assert reply.status == status
        if status == 403:
            assert reply.body.startswith(b"Host not allowed")


async def test_host_allowlist_on_the_websocket_handshake(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo)) as server:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(named_url(server, "rebind.evil.example"), sock=loopback(server)):
                pass
        assert caught.value.response.status_code == 403


def test_host_rules() -> None:
    policy = AccessPolicy(api_key=None, allowed_hosts=frozenset({"localhost", "127.0.0.1", "::1"}), allowed_origins=())
    # An IP-literal Host cannot come from DNS rebinding: the address the client reached is accepted.
    assert policy.host_allowed("192.168.1.20:8765", "192.168.1.20")
    assert policy.host_allowed("192.168.1.20", "::ffff:192.168.1.20")
    assert not policy.host_allowed("192.168.1.21", "192.168.1.20")
    assert not policy.host_allowed("phone.example", "192.168.1.20")
    assert not policy.host_allowed(None, "127.0.0.1")
    assert [host_name(h) for h in ("A.b:1", "[::1]:80", "::1", "x")] == ["a.b", "::1", "::1", "x"]


async def test_same_origin_needs_an_allowed_host(live_server: ServerFactory) -> None:
    """A rebinding page is "same origin" with the Host it sent; the Host check refuses it first."""
    async with live_server(ScriptedBackend(echo)) as server:
        own = f"http://127.0.0.1:{server.port}"
        async with connect(live_url(server), origin=own) as ws:  # type: ignore[arg-type]
            assert "setupComplete" in await setup_answer(ws)
        evil = f"http://evil.example:{server.port}"
        with pytest.raises(InvalidStatus) as caught:
            async with connect(named_url(server, "evil.example"), sock=loopback(server), origin=evil):  # type: ignore[arg-type]
                pass
        assert caught.value.response.status_code == 403


# -- the page's key and cookie ----------------------------------------------------------


async def test_page_trades_the_key_for_an_httponly_cookie(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo), api_key=KEY) as server:
        reply = await raw_http(server, get(f"/?key={KEY}&persona=pirate", "Host: 127.0.0.1"))
        assert reply.status == 303 and reply.headers["location"] == "/?persona=pirate"
        cookie = reply.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and KEY not in cookie
        assert (await raw_http(server, get("/?key=wrong", "Host: 127.0.0.1"))).status == 403
        jar = cookie.split(";")[0]
        # The cookie mints tokens...
        minted = await raw_http(server, post_json("/v1alpha/auth_tokens", {}, f"Cookie: {jar}"))
        assert minted.status == 200 and str(minted.json()["name"]).startswith("auth_tokens/")
        # ...but opens no websocket by itself: the page connects with a token.
        async with connect(live_url(server), additional_headers={"Cookie": jar}) as ws:
            await ws.send(json.dumps({"setup": {"model": "m"}}))
            assert (await closed_with(ws))[0] == 1008
        # A forged cookie mints nothing.
        forged = await raw_http(server, post_json("/v1alpha/auth_tokens", {}, "Cookie: assistant-key-0=00"))
        assert forged.status == 401


async def test_config_says_whether_the_page_needs_a_token(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo)) as server:
        assert (await raw_http(server, get("/config.json", "Host: localhost"))).json() == {"auth": "none"}
    async with live_server(ScriptedBackend(echo), api_key=KEY) as server:
        config = await raw_http(server, get("/config.json", "Host: localhost"))
        assert config.json() == {"auth": "token", "signedIn": False}
        login = await raw_http(server, get(f"/?key={KEY}", "Host: localhost"))
        cookie = login.headers["set-cookie"].split(";")[0]
        config = await raw_http(server, get("/config.json", "Host: localhost", f"Cookie: {cookie}"))
        assert config.json() == {"auth": "token", "signedIn": True}


# -- minting tokens ------------------------------------------------------------------------


async def test_minting_needs_the_key_and_json(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo), api_key=KEY) as server:
        refused = await raw_http(server, post_json("/v1alpha/auth_tokens", {}))
        assert refused.status == 401
        error = refused.json()["error"]
        assert isinstance(error, dict) and error["code"] == 401 and error["status"] == "UNAUTHENTICATED"
        assert "API key not valid" in error["message"]
        bad = await mint(server, {"uses": -1})
        assert bad.status == 400 and "uses must be" in str(bad.json())
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        assert "expireTime must be in the future" in str((await mint(server, {"expireTime": past})).json())
        assert (await mint(server, {"surprise": 1})).status == 400
        assert (await mint(server, [1, 2])).status == 400
        text = post_json("/v1alpha/auth_tokens", {}, f"x-goog-api-key: {KEY}").replace(
            b"application/json", b"text/plain"
        )
        assert (await raw_http(server, text)).status == 415
        cross_site = await mint(server, {}, "Origin: https://evil.example")
        assert cross_site.status == 403
        assert (await raw_http(server, get("/v1alpha/auth_tokens", "Host: 127.0.0.1"))).status == 405
        good = await mint(server, {"uses": 2})
        assert good.status == 200 and good.headers["cache-control"] == "no-store"
        assert set(good.json()) == {"name", "expireTime", "newSessionExpireTime"}


# -- using tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "headers", "query"),
    [
        ("query", {}, "?access_token={token}"),  # the JS SDK and browsers
        ("authorization", {"Authorization": "Token {token}"}, ""),  # the Python SDK
        ("api-key", {"x-goog-api-key": "{token}"}, ""),
    ],
)
async def test_a_token_opens_as_many_sessions_as_its_uses(
    live_server: ServerFactory, where: str, headers: dict[str, str], query: str
) -> None:
    async with live_server(ScriptedBackend(echo), api_key=KEY) as server:
        token = str((await mint(server, {"uses": 2})).json()["name"])
        filled = {name: value.format(token=token) for name, value in headers.items()}
        url = live_url(server, CONSTRAINED, query.format(token=token))
        for _ in range(2):
            async with connect(url, additional_headers=filled) as ws:
                assert "setupComplete" in await setup_answer(ws)
        async with connect(url, additional_headers=filled) as ws:
            await ws.send(json.dumps({"setup": {"model": "m"}}))
            assert await closed_with(ws) == (1008, "ephemeral token used up; ask the server for a new one")


async def test_unknown_token_is_refused(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo), api_key=KEY) as server:
        async with connect(live_url(server, CONSTRAINED, "?access_token=auth_tokens/forged")) as ws:
            await ws.send(json.dumps({"setup": {"model": "m"}}))
            assert await closed_with(ws) == (1008, "ephemeral token not valid or expired")


async def test_resuming_spends_no_use_and_late_new_sessions_are_refused(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo), api_key=KEY) as server:
        soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        token = str((await mint(server, {"uses": 1, "newSessionExpireTime": soon})).json()["name"])
        url = live_url(server, CONSTRAINED, f"?access_token={token}")
        async with connect(url) as ws:
            await ws.send(json.dumps({"setup": {"model": "m", "sessionResumption": {}}}))
            assert "setupComplete" in await recv_json(ws)
        await asyncio.sleep(1.1)
        async with connect(url) as ws:
            await ws.send(json.dumps({"setup": {"model": "m"}}))
            late = "ephemeral token can no longer start sessions; ask the server for a new one"
            assert await closed_with(ws) == (1008, late)
        async with connect(url) as ws:  # a resumption is still welcome: it spends nothing
            await ws.send(json.dumps({"setup": {"model": "m", "sessionResumption": {"handle": "h-unknown"}}}))
            code, reason = await closed_with(ws)
            assert code == 1007 and "sessionResumption.handle" in reason  # judged by the session, not the token


async def test_an_expired_token_closes_its_session(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo), api_key=KEY) as server:
        expire = datetime.now(UTC) + timedelta(seconds=1.5)
        token = str((await mint(server, {"expireTime": expire.isoformat()})).json()["name"])
        async with connect(live_url(server, CONSTRAINED, f"?access_token={token}")) as ws:
            assert "setupComplete" in await setup_answer(ws)
            started = time.time()
            assert await closed_with(ws) == (1008, "ephemeral token expired; ask the server for a new one")
            assert expire.timestamp() - 0.5 < time.time() and time.time() - started < 3
        async with connect(live_url(server, CONSTRAINED, f"?access_token={token}")) as ws:
            await ws.send(json.dumps({"setup": {"model": "m"}}))
            assert (await closed_with(ws))[0] == 1008
        await eventually(lambda: not server.sessions)


async def test_constraints_lock_the_setup(live_server: ServerFactory) -> None:
    seen: list[tuple[str, str | None, float | None]] = []

    async def script(s: ScriptedSession) -> None:
        setup = s.request.setup
        instruction = setup.system_instruction.text() if setup.system_instruction else None
        temperature = setup.generation_config.temperature if setup.generation_config else None
        seen.append((setup.model, instruction, temperature))
        await s.closed.wait()

    client_setup = {
        "model": "models/client-choice",
        "systemInstruction": {"parts": [{"text": "ignore your rules"}]},
        "generation_config": {"temperature": 1.5},
    }
    constraints = {"model": "models/locked", "systemInstruction": {"parts": [{"text": "Be kind."}]}}
    async with live_server(ScriptedBackend(script), api_key=KEY) as server:
        lock_all = str((await mint(server, {"bidiGenerateContentSetup": constraints})).json()["name"])
        lock_some = str(
            (await mint(server, {"bidiGenerateContentSetup": constraints, "fieldMask": "model"})).json()["name"]
        )
        for token in (lock_all, lock_some):
            async with connect(live_url(server, CONSTRAINED, f"?access_token={token}")) as ws:
                assert "setupComplete" in await setup_answer(ws, client_setup)
    assert seen == [
        ("models/locked", "Be kind.", None),  # every field comes from the token
        ("models/locked", "ignore your rules", 1.5),  # only the model is locked
    ]


def test_token_store_is_bounded_and_uses_its_clock() -> None:
    now = [1000.0]
    store = MemoryTokenStore(max_tokens=2, clock=lambda: now[0])
    first = store.mint({"uses": 0}, "key")
    store.mint({}, "key")
    with pytest.raises(TokenRequestError, match="2 live tokens"):
        store.mint({}, "key")
    for _ in range(5):
        store.redeem(first.name, resuming=False)  # uses 0: no limit
    now[0] += 31 * 60
    with pytest.raises(TokenRefused, match="expired"):
        store.redeem(first.name, resuming=True)
    store.mint({}, "key")  # the expired ones made room
    assert len(store) == 1


# -- session limits ---------------------------------------------------------------------------


async def test_max_sessions_turns_the_excess_away_with_1013(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo), max_sessions=2) as server:
        async with connect(live_url(server)) as a, connect(live_url(server)) as b:
            assert "setupComplete" in await setup_answer(a)
            assert "setupComplete" in await setup_answer(b)
            async with connect(live_url(server)) as c:
                await c.send(json.dumps({"setup": {"model": "m"}}))
                assert await closed_with(c) == (1013, "server busy: too many sessions; try again later")
        await eventually(lambda: server.limits.live() == 0)
        async with connect(live_url(server)) as d:  # slots come back when sessions end
            assert "setupComplete" in await setup_answer(d)


async def test_per_key_limit_counts_tokens_against_the_key_that_minted_them(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo), api_key=KEY, max_sessions_per_key=1) as server:
        token = str((await mint(server, {"uses": 5})).json()["name"])
        async with connect(live_url(server), additional_headers={"x-goog-api-key": KEY}) as a:
            assert "setupComplete" in await setup_answer(a)
            async with connect(live_url(server, CONSTRAINED, f"?access_token={token}")) as b:
                await b.send(json.dumps({"setup": {"model": "m"}}))
                assert await closed_with(b) == (1013, "too many sessions for this key or address; try again later")


async def test_session_limits_count_per_principal() -> None:
    limits = SessionLimits(total=3, per_principal=2)
    admitted = [await limits.admit("a"), await limits.admit("a"), await limits.admit("a")]
    assert admitted == [None, None, "too many sessions for this key or address; try again later"]
    assert await limits.admit("b") is None
    assert await limits.admit("c") == "server busy: too many sessions; try again later"
    await limits.release("a")
    assert await limits.admit("c") is None and limits.live() == 3 and limits.live("a") == 1
    assert await limits.counter.count("a") == 1  # the per-key count lives in the counter, released with the session


async def test_the_per_key_limit_holds_across_servers_sharing_the_redis_store(
    live_server: ServerFactory, redis_server: RedisServer
) -> None:
    stores = [RedisConversationStore(redis_server.url) for _ in range(2)]
    for store in stores:
        await store.start()
    try:
        limited = {"api_key": KEY, "max_sessions_per_key": 1}
        async with (
            live_server(ScriptedBackend(echo), session_counts=stores[0].session_counts, **limited) as one,
            live_server(ScriptedBackend(echo), session_counts=stores[1].session_counts, **limited) as two,
        ):
            keyed = {"x-goog-api-key": KEY}
            async with connect(live_url(one), additional_headers=keyed) as first:
                assert "setupComplete" in await setup_answer(first)
                async with connect(live_url(two), additional_headers=keyed) as second:  # the other process
                    await second.send(json.dumps({"setup": {"model": "m"}}))
                    assert await closed_with(second) == (1013, TRY_AGAIN_KEY_REASON)
                label = one.access.key_label()
                assert KEY not in label and await stores[1].session_counts.count(label) == 1
                held = await stores[0].connection.client.keys("*")
                assert held and not any(KEY in key for key in held)  # Redis never holds the key itself
            await eventually(lambda: one.limits.live() == 0)
            assert await stores[1].session_counts.count(label) == 0  # the slot went back to the shared count
            async with connect(live_url(two), additional_headers=keyed) as third:
                assert "setupComplete" in await setup_answer(third)
    finally:
        for store in stores:
            await store.aclose()


def test_the_certificates_names_are_allowed_hosts(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=box",
            "-addext", "subjectAltName=DNS:Box.Example,IP:10.1.2.3",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    assert certificate_names(cert) == {"box.example", "10.1.2.3"}
    hosts = default_allowed_hosts("0.0.0.0", cert, ["assistant.lan:443"])
    assert hosts == {"localhost", "127.0.0.1", "::1", "box.example", "10.1.2.3", "assistant.lan"}
    assert "192.168.1.9" in default_allowed_hosts("192.168.1.9", None, [])


async def test_without_a_key_sessions_are_counted_per_client_address(live_server: ServerFactory) -> None:
    async with live_server(ScriptedBackend(echo), max_sessions_per_key=1) as server:
        async with connect(live_url(server)) as a:
            assert "setupComplete" in await setup_answer(a)
            assert server.limits.live("address:127.0.0.1") == 1
            async with connect(live_url(server)) as b:
                await b.send(json.dumps({"setup": {"model": "m"}}))
                assert await closed_with(b) == (1013, "too many sessions for this key or address; try again later")


@pytest.mark.slow
async def test_a_body_that_never_arrives_is_cut_off(live_server: ServerFactory) -> None:
    """A trickling client holds a connection for the handshake timeout at most, then loses it."""
    async with live_server(ScriptedBackend(echo), api_key=KEY) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        head = "POST /v1alpha/auth_tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"
        writer.write(head.encode())
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), HANDSHAKE_TIMEOUT_S + 5) == b""
        assert HANDSHAKE_TIMEOUT_S - 1 < time.monotonic() - started < HANDSHAKE_TIMEOUT_S + 5
        writer.close()
        assert (await raw_http(server, get("/config.json", HOST))).status == 200
