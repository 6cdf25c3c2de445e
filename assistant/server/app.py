"""``assistant serve``: the Live protocol over real websockets.

The server accepts the Live paths the google-genai SDK and Pastra pages use,
checks the access key, the browser Origin and the message size, and hands
each connection to a ``Session``. Plain HTTP GETs on the same port serve the
browser client, so the page and its socket share one origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import mimetypes
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from assistant.protocol import CloseCode
from assistant.session import (
    Backend,
    LateResults,
    ProfileResolver,
    ResumptionStore,
    ServerTools,
    Session,
    SessionSettings,
    TransportClosed,
)

logger = logging.getLogger("assistant.server")

LIVE_PATH = re.compile(
    r"^/+ws/google\.ai\.generativelanguage\.(?P<version>v1alpha|v1beta|v1)\."
    r"GenerativeService\.BidiGenerateContent(?:Constrained)?$"
)
DEFAULT_LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
SETUP_GRACE_S = 5.0
PERSONAS_PATH = "/personas.json"
BAD_KEY_REASON = "API key not valid; send the server's access key in the x-goog-api-key header or ?key="
DRAIN_GRACE_S = 2.0  # past a drain's time left, for sessions to send their close frames


@dataclass(slots=True)
class ServerConfig:
    """How ``assistant serve`` listens and whom it lets in."""

    host: str = "127.0.0.1"
    port: int = 8765
    tls_cert: Path | None = None
    tls_key: Path | None = None
    api_key: str | None = None
    allowed_origins: list[str] = field(default_factory=list)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    static_dir: Path | None = None
    session: SessionSettings = field(default_factory=SessionSettings)

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.tls_cert is None and self.tls_key is None:
            return None
        if self.tls_cert is None or self.tls_key is None:
            raise ValueError("TLS needs both --tls-cert and --tls-key")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls_cert, self.tls_key)
        return context


def _ok(body: bytes, content_type: str) -> Response:
    """A 200 the browser neither caches stale nor sniffs."""
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
        ]
    )
    return Response(HTTPStatus.OK, "OK", headers, body)


class WebSocketTransport:
    """A ``Transport`` over one websockets server connection."""

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        address = connection.remote_address
        self.peer = f"{address[0]}:{address[1]}" if address else "unknown"

    async def recv(self) -> str | bytes:
        try:
            return await self.connection.recv()
        except ConnectionClosed:
            raise TransportClosed from None

    async def send(self, data: bytes) -> None:
        try:
            await self.connection.send(data)
        except ConnectionClosed:
            raise TransportClosed from None

    async def close(self, code: int, reason: str) -> None:
        await self.connection.close(code, reason)


def origin_allowed(origin: str | None, host_header: str | None, allowed: list[str]) -> bool:
    """Browsers may connect from the same origin, from loopback pages, or from an allowed origin.

    Clients that are not browsers send no Origin and are let in (the access
    key is what guards them).
    """
    if origin is None or "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    if parts.hostname in LOOPBACK_HOSTS:
        return True
    return bool(host_header) and parts.netloc.lower() == (host_header or "").lower()


def presented_key(request: Request) -> str | None:
    """The access key a client sent: header (the SDK), query (browsers) or bearer token."""
    key = request.headers.get("x-goog-api-key")
    if key:
        return key
    query = parse_qs(request.path.partition("?")[2])
    if query.get("key"):
        return query["key"][0]
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def requested_profile(request: Request) -> str | None:
    """The persona a connection asks for: ``?persona=`` (browsers) or the ``x-assistant-persona`` header."""
    query = parse_qs(request.path.partition("?")[2])
    if query.get("persona"):
        return query["persona"][0]
    return request.headers.get("x-assistant-persona") or None


def requested_events(request: Request) -> set[str]:
    """Extension events a client of this project opted into (``?events=tools``)."""
    query = parse_qs(request.path.partition("?")[2])
    return {name.strip() for value in query.get("events", []) for name in value.split(",") if name.strip()}


class LiveServer:
    """Owns the listening socket, the backend and the live sessions."""

    def __init__(
        self,
        config: ServerConfig,
        backend: Backend,
        *,
        store: ResumptionStore,
        tools: ServerTools | None = None,
        profiles: ProfileResolver | None = None,
        persona_catalog: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """``persona_catalog`` lists the personas clients may choose, served as ``/personas.json``."""
        self.config = config
        self.backend = backend
        self.store = store
        self.tools = tools
        self.profiles = profiles
        self.persona_catalog = persona_catalog
        self.sessions: set[Session] = set()
        self.late_results = LateResults()  # a timer set over one connection fires into the next
        self._server: Server | None = None
        self.draining = False
        self._drain_until = 0.0  # loop time when draining sessions must be gone
        self._no_sessions = asyncio.Event()
        self._no_sessions.set()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def scheme(self) -> str:
        return "wss" if self.config.tls_cert else "ws"

    @property
    def live_url(self) -> str:
        return f"{self.scheme}://{self.config.host}:{self.port}{DEFAULT_LIVE_PATH}"

    async def start(self) -> None:
        await self.backend.start()
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            ssl=self.config.ssl_context(),
            process_request=self._process_request,
            max_size=self.config.max_message_bytes,
            compression=None,  # base64 PCM barely compresses; deflate would only cost CPU and latency
            server_header="assistant",
        )

    async def stop(self) -> None:
        """Close the listener and every connection (1001), then release the backend."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.backend.aclose()
        await self.store.aclose()

    async def drain(self, seconds: float) -> None:
        """Stop taking sessions and let each one end within ``seconds`` (``Session.drain``).

        New Live connections are refused with 503 and a Retry-After; every
        connected client gets ``goAway`` and, if it asked for resumption, a
        handle that the restarted server (same SQLite store) will accept.
        Returns when every session has ended, or a little after the time is up.
        """
        loop = asyncio.get_running_loop()
        self.draining = True
        self._drain_until = loop.time() + seconds
        logger.info("draining %d sessions within %.1f s", len(self.sessions), seconds)
        for session in list(self.sessions):
            session.drain(seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_sessions.wait(), seconds + DRAIN_GRACE_S)
        if self.sessions:
            logger.warning("%d sessions still open after the drain; closing them", len(self.sessions))

    async def serve_forever(self) -> None:
        assert self._server is not None, "server not started"
        await self._server.serve_forever()

    # -- HTTP side ------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        # Not urlsplit: it would read the "ws" of a doubled leading slash as a host name.
        path = unquote(request.path.partition("?")[0])
        if LIVE_PATH.match(path):
            if self.draining:
                refused = connection.respond(
                    HTTPStatus.SERVICE_UNAVAILABLE, "The server is restarting; reconnect in a few seconds.\n"
                )
                wait_s = self._drain_until - asyncio.get_running_loop().time() + DRAIN_GRACE_S
                refused.headers["Retry-After"] = str(max(1, math.ceil(wait_s)))
                return refused
            if not origin_allowed(
                request.headers.get("origin"), request.headers.get("host"), self.config.allowed_origins
            ):
                logger.warning("refused websocket from origin %s", request.headers.get("origin"))
                return connection.respond(
                    HTTPStatus.FORBIDDEN, "Origin not allowed; start the server with --allow-origin\n"
                )
            if "upgrade" not in request.headers.get("connection", "").lower():
                return connection.respond(HTTPStatus.UPGRADE_REQUIRED, "This is a Live websocket endpoint.\n")
            return None
        if path == PERSONAS_PATH:
            catalog = self.persona_catalog() if self.persona_catalog else {"default": None, "personas": []}
            return _ok(json.dumps(catalog, ensure_ascii=False).encode(), "application/json; charset=utf-8")
        return self._static(connection, path)

    def _static(self, connection: ServerConnection, path: str) -> Response:
        root = self.config.static_dir
        not_found = f"Not found. The Live websocket endpoint is {DEFAULT_LIVE_PATH}\n"
        if root is None or not root.is_dir():
            return connection.respond(HTTPStatus.NOT_FOUND, not_found)
        relative = path.lstrip("/") or "index.html"
        target = (root / relative).resolve()
        if not target.is_relative_to(root.resolve()) or not target.is_file():
            return connection.respond(HTTPStatus.NOT_FOUND, not_found)
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        return _ok(target.read_bytes(), content_type)

    # -- websocket side -----------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        if self.config.api_key is not None:
            key = presented_key(request)
            if key is None or not hmac.compare_digest(key.encode(), self.config.api_key.encode()):
                logger.warning("refused %s: bad or missing access key", connection.remote_address)
                # Like the real service, answer the setup with the close, so a client that sends
                # setup straight after the handshake (the SDK) reads the reason instead of a
                # broken pipe.
                with contextlib.suppress(TimeoutError, ConnectionClosed):
                    await asyncio.wait_for(connection.recv(), SETUP_GRACE_S)
                await connection.close(CloseCode.POLICY_VIOLATION, BAD_KEY_REASON)
                return
        session = Session(
            WebSocketTransport(connection),
            self.backend,
            store=self.store,
            tools=self.tools,
            settings=self.config.session,
            profiles=self.profiles,
            requested_profile=requested_profile(request),
            observe_tools="tools" in requested_events(request),
            late_results=self.late_results,
        )
        self.sessions.add(session)
        self._no_sessions.clear()
        if self.draining:  # its handshake finished just before the drain began
            session.drain(max(0.0, self._drain_until - asyncio.get_running_loop().time()))
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            if not self.sessions:
                self._no_sessions.set()
