"""Hostile HTTP against the server: whatever a client sends, the answer is a project-written 1xx-4xx.

Hypothesis builds requests from the pieces that broke the server before
(doubled headers, control characters and bad escapes in the path, bodies
where none belong, odd methods) and sends each over a raw socket to one
server running on its own thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http import HTTPStatus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.server import DEFAULT_LIVE_PATH, LiveServer, ServerConfig
from assistant.session import MemoryResumptionStore
from tests.support.scripted import ScriptedBackend
from tests.test_server_raw import echo

KEY = "fuzz-key"
PROJECT_TEXTS = (
    b"Bad request",
    b"Bad websocket handshake",
    b"Request",
    b"Host not allowed",
    b"Origin not allowed",
    b"Only GET",
    b"This is a Live websocket endpoint",
    b"Not found",
    b"Access key not valid",
    b"This server takes no key",
    b"{",  # JSON: the token endpoint's errors and the page's config
    b"<!doctype html>",
)


@pytest.fixture(scope="module")
def threaded_server() -> Iterator[LiveServer]:
    """One server for every example, on its own event loop thread (Hypothesis drives blocking sockets)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    from assistant.cli.serve import default_static_dir

    server = LiveServer(
        ServerConfig(port=0, api_key=KEY, static_dir=default_static_dir()),
        ScriptedBackend(echo),
        store=MemoryResumptionStore(),
    )
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


header_names = st.sampled_from(
    ["Host", "Origin", "Connection", "Upgrade", "Cookie", "Authorization", "x-goog-api-key", "Content-Type",
     "Sec-WebSocket-Key", "Sec-WebSocket-Version", "X-Assistant-Persona"]
)  # fmt: skip
header_values = st.one_of(
    st.sampled_from(
        ["127.0.0.1", "localhost", "evil.example", "http://127.0.0.1", "Upgrade", "websocket", "13",
         "Token auth_tokens/x", f"Bearer {KEY}", KEY, "application/json", "a=b; c"]
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
)  # fmt: skip
paths = st.one_of(
    st.sampled_from(
        ["/", "/%00", "/%ff", "/..%2f..%2fetc/passwd", "/config.json", "/personas.json", "/v1alpha/auth_tokens",
         f"/?key={KEY}", "/?key=wrong", DEFAULT_LIVE_PATH, DEFAULT_LIVE_PATH + "?access_token=auth_tokens/x"]
    ),
    # Percent-escapes of any byte (NUL, lone UTF-8 continuation bytes), dots and separators.
    st.lists(
        st.one_of(st.integers(0, 255).map(lambda byte: f"%{byte:02x}"), st.sampled_from(["a", "/", "..", "?", "="])),
        max_size=8,
    ).map(lambda parts: "/" + "".join(parts)),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40).map(lambda text: "/" + text),
)  # fmt: skip


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """Mostly well-formed request lines (so the request reaches routing), with hostile paths and headers."""
    method = draw(st.sampled_from(["GET", "GET", "GET", "POST", "POST", "PUT", "OPTIONS", "GE T", "\x00"]))
    path = draw(paths)
    protocol = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2"]))
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=4))
    if draw(st.integers(0, 9)):
        headers.insert(0, ("Host", "127.0.0.1"))
    body = draw(st.sampled_from([b"", b"", b"{}", b'{"uses": 1}', b"[", b"\xff\xfe"]))
    lines = [f"{method} {path} {protocol}", *(f"{name}: {value}" for name, value in headers)]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def answer_head(port: int, request: bytes) -> tuple[int, bytes]:
    """Status and the first bytes of the body; a websocket that opens is closed at once."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        if not head:
            return 0, b""
        status = int(head.split(b" ", 2)[1])
        if status == 101:
            return status, b""
        while len(body) < 40:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests())
def test_no_request_gets_a_5xx_or_library_text(threaded_server: LiveServer, request: bytes) -> None:
    status, body = answer_head(threaded_server.port, request)
    assert status, f"no answer to {request!r}"
    assert status < 500, (request, status, body)
    if status == HTTPStatus.SEE_OTHER:  # the page's sign-in with the right key: a redirect carries no text
        assert b"key=fuzz-key" in request, (request, status, body)
        return
    assert status == 101 or body.startswith(PROJECT_TEXTS), (request, status, body)
