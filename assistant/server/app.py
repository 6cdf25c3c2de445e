"""``assistant serve``: the Live protocol over real websockets.

The server accepts the Live paths the google-genai SDK and Pastra pages use,
checks the Host, the browser Origin, the access key or ephemeral token (see
``access`` and ``tokens``), the session limits and the message size, and
hands each connection to a ``Session``. Plain HTTP on the same port serves
the browser client (so the page and its socket share one origin), the
page's ``/config.json`` and ``POST /v1alpha/auth_tokens``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import mimetypes
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from assistant.protocol import CloseCode
from assistant.server.access import AccessPolicy, BadRequest, Credentials, default_allowed_hosts, single_header
from assistant.server.admission import SessionLimits, TokenGate
from assistant.server.handshake import BodyRequest, LiveConnection, connection_class
from assistant.server.ops import OPS_PATHS, PROBE_PATHS, Readiness, counted, ops_response
from assistant.server.tokens import MemoryTokenStore, TokenRefused, TokenRequestError, TokenStore, token_response
from assistant.session import (
    Backend,
    LateResultRouter,
    LateResults,
    ProfileResolver,
    ResumptionStore,
    ServerTools,
    Session,
    SessionSettings,
    Transport,
    TransportClosed,
)
from assistant.session.counts import SessionCounter
from assistant.session.transport import MessageSink
from assistant.session.websocket import write_now

logger = logging.getLogger("assistant.server")

LIVE_PATH = re.compile(
    r"^/+ws/google\.ai\.generativelanguage\.(?P<version>v1alpha|v1beta|v1)\."
    r"GenerativeService\.BidiGenerateContent(?:Constrained)?$"
)
DEFAULT_LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# What websockets itself buffers per connection: unread frames (each up to max_message_bytes) and
# unsent bytes. The session reads promptly into its byte-bounded queues, so one frame is enough; a
# client that floods waits on TCP instead of filling memory with 16 frames of 8 MiB.
WEBSOCKET_QUEUE_FRAMES = 1
WEBSOCKET_WRITE_LIMIT_BYTES = 32 * 1024
SETUP_GRACE_S = 5.0
# A request, its small body included, must arrive within this; a client that trickles bytes is cut off.
HANDSHAKE_TIMEOUT_S = 10.0
PERSONAS_PATH = "/personas.json"
# An answer that reads files: built on a worker thread by ``_process_request``.
FileAnswer = Callable[[], Response]
CONFIG_PATH = "/config.json"
TOKENS_PATH = re.compile(r"^/+v1(?:alpha|beta)?/auth_tokens$")
BAD_KEY_REASON = "API key not valid; send the server's access key in the x-goog-api-key header or ?key="
BAD_HOST_TEXT = (
    "Host not allowed: this server answers only under the names it was started for "
    "(add one with --allow-host NAME)\n"
)
# Control characters (NUL above all) have no place in a path, and would reach filesystem calls.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
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
    allowed_hosts: list[str] = field(default_factory=list)  # besides loopback, the listen address, the cert's
    max_sessions: int | None = None
    max_sessions_per_key: int | None = None
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

    def access_policy(self) -> AccessPolicy:
        return AccessPolicy(
            api_key=self.api_key,
            allowed_hosts=default_allowed_hosts(self.host, self.tls_cert, self.allowed_hosts),
            allowed_origins=tuple(self.allowed_origins),
            cookie_name=f"assistant-key-{self.port}",
        )


def _ok(body: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK, cache: str = "no-cache") -> Response:
    """A response the browser neither caches stale nor sniffs."""
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", cache),
            ("X-Content-Type-Options", "nosniff"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def _google_error(status: HTTPStatus, message: str) -> Response:
    """An error in Google's JSON shape, which the SDKs turn into ``errors.APIError`` with this message."""
    google_status = {
        HTTPStatus.BAD_REQUEST: "INVALID_ARGUMENT",
        HTTPStatus.UNAUTHORIZED: "UNAUTHENTICATED",
        HTTPStatus.FORBIDDEN: "PERMISSION_DENIED",
        HTTPStatus.SERVICE_UNAVAILABLE: "UNAVAILABLE",
    }.get(status, "FAILED_PRECONDITION")
    body = {"error": {"code": status.value, "message": message, "status": google_status}}
    return _ok(json.dumps(body).encode(), "application/json; charset=utf-8", status, cache="no-store")


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

    def send_now(self, data: bytes) -> bool:
        return write_now(self.connection, data)

    def push_messages(self, sink: MessageSink | None) -> bool:
        if not isinstance(self.connection, LiveConnection):
            return False
        self.connection.message_sink = sink
        return True

    async def close(self, code: int, reason: str) -> None:
        await self.connection.close(code, reason)


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
        tokens: TokenStore | None = None,
        late_results: LateResultRouter | None = None,
        session_counts: SessionCounter | None = None,
    ) -> None:
        """``persona_catalog`` lists the personas clients may choose, served as ``/personas.json``;
        ``tokens`` keeps ephemeral tokens (in this process unless given); ``late_results`` and
        ``session_counts`` (for ``--max-sessions-per-key``) are shared with other processes when the
        conversation store is (Redis)."""
        self.config = config
        self.backend = backend
        self.store = store
        self.tools = tools
        self.profiles = profiles
        self.persona_catalog = persona_catalog
        self.sessions: set[Session] = set()
        self.late_results = late_results or LateResults()  # a timer set over one connection fires into the next
        self.readiness = Readiness(store)  # /readyz; drain sets readiness.draining
        self.access = config.access_policy()
        self.tokens: TokenStore = tokens if tokens is not None else MemoryTokenStore()
        self.limits = SessionLimits(config.max_sessions, config.max_sessions_per_key, session_counts)
        self._server: Server | None = None
        self._connection_class = connection_class(lambda method, path: method == "POST" and _is_tokens_path(path))
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
        self.readiness.backend_started = True
        await self.readiness.start()
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            ssl=self.config.ssl_context(),
            process_request=self._process_request,
            process_response=self._process_response,
            max_size=self.config.max_message_bytes,
            max_queue=WEBSOCKET_QUEUE_FRAMES,
            write_limit=WEBSOCKET_WRITE_LIMIT_BYTES,
            compression=None,  # base64 PCM barely compresses; deflate would only cost CPU and latency
            server_header="assistant",
            open_timeout=HANDSHAKE_TIMEOUT_S,
            create_connection=self._connection_class,
        )

    async def stop(self) -> None:
        """Close the listener and every connection (1001), then release the backend."""
        await self.readiness.stop()
        if self._server is not None:
            self._server.close()
            # A connection that has not sent its request yet (an HTTP client's idle keep-alive) would
            # hold the stop for the whole handshake timeout; no conversation is on it, so drop it.
            for connection in list(self._connection_class.accepted):
                if connection.protocol.state is State.CONNECTING:
                    connection.transport.abort()
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
        self.draining = self.readiness.draining = True  # balancers stop sending new sessions (/readyz)
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

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Route one HTTP request; anything that cannot be interpreted gets a 400, never a traceback.

        Answers that read files (the page, the persona catalog) are built on a
        worker thread, so a slow disk never stalls the sessions on the loop.
        """
        try:
            answer = self._route(connection, request)
        except BadRequest as exc:
            logger.info("bad request from %s: %s", connection.remote_address, exc)
            return connection.respond(HTTPStatus.BAD_REQUEST, f"Bad request: {exc}.\n")
        if callable(answer):
            return await asyncio.to_thread(answer)
        return answer

    @staticmethod
    def _process_response(connection: ServerConnection, request: Request, response: Response) -> Response | None:
        """A handshake websockets refused (a bad Sec-WebSocket-Key, say) is answered in the project's words."""
        if connection.protocol.accept_called and response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            text = "Bad websocket handshake: send a standard RFC 6455 upgrade request.\n"
            return connection.respond(response.status_code, text)
        return None

    def _route(self, connection: ServerConnection, request: Request) -> Response | FileAnswer | None:
        """The answer to one request: a response, a ``FileAnswer`` to build off the loop, or None to upgrade."""
        raw_path, _, query = request.path.partition("?")
        # Not urlsplit: it would read the "ws" of a doubled leading slash as a host name.
        try:
            path = unquote(raw_path, errors="strict")
        except UnicodeDecodeError:
            raise BadRequest("the path is not UTF-8") from None
        if CONTROL_CHARACTERS.search(path):
            raise BadRequest("the path holds control characters")
        if path in PROBE_PATHS:  # before the Host check: a balancer's health check may send none
            return ops_response(connection, path, self.readiness, self.config.api_key, None)
        host = single_header(request.headers, "host")
        if not host:
            raise BadRequest("no Host header")
        local = connection.local_address
        if not self.access.host_allowed(host, local[0] if local else None):
            logger.warning("refused request for host %r from %s", host[:100], connection.remote_address)
            return connection.respond(HTTPStatus.FORBIDDEN, BAD_HOST_TEXT)
        origin = single_header(request.headers, "origin")
        if origin is not None and not self.access.origin_allowed(origin, host, self.http_scheme):
            logger.warning("refused request from origin %r", origin[:100])
            return connection.respond(
                HTTPStatus.FORBIDDEN, "Origin not allowed; start the server with --allow-origin\n"
            )
        credentials = self.access.presented(request.headers, query)
        if path in OPS_PATHS:
            return ops_response(connection, path, self.readiness, self.config.api_key, credentials.key)
        if LIVE_PATH.match(path):
            if self.draining:
                refused = connection.respond(
                    HTTPStatus.SERVICE_UNAVAILABLE, "The server is restarting; reconnect in a few seconds.\n"
                )
                wait_s = self._drain_until - asyncio.get_running_loop().time() + DRAIN_GRACE_S
                refused.headers["Retry-After"] = str(max(1, math.ceil(wait_s)))
                return refused
            if "upgrade" not in (single_header(request.headers, "connection") or "").lower():
                return connection.respond(HTTPStatus.UPGRADE_REQUIRED, "This is a Live websocket endpoint.\n")
            if isinstance(connection, LiveConnection):
                connection.credentials = credentials
            return None
        if _is_tokens_path(path):
            return self._mint_token(connection, request, credentials)
        if request.method != "GET":
            return connection.respond(HTTPStatus.METHOD_NOT_ALLOWED, "Only GET is served here.\n")
        if path == CONFIG_PATH:
            # Whether connections need a token, and whether this page's cookie can mint one.
            config: dict[str, object] = {"auth": "none"}
            if self.config.api_key is not None:
                config = {"auth": "token", "signedIn": self.access.page_cookie_valid(request.headers)}
            return _ok(json.dumps(config).encode(), "application/json; charset=utf-8")
        if path == PERSONAS_PATH:
            return self._personas
        if path == "/" and "key" in parse_qs(query):
            return self._page_login(connection, query, credentials)
        return functools.partial(self._static, connection, path)

    @property
    def http_scheme(self) -> str:
        return "https" if self.config.tls_cert else "http"

    def _page_login(self, connection: ServerConnection, query: str, credentials: Credentials) -> Response:
        """``GET /?key=K``: trade the key for an HttpOnly cookie and a clean URL, as Jupyter does.

        The key then lives in neither the address bar, the history, nor the
        page's script; the cookie can only mint ephemeral tokens.
        """
        if self.config.api_key is None:
            return connection.respond(HTTPStatus.BAD_REQUEST, "This server takes no key; open / instead.\n")
        if not self.access.key_valid(credentials.key):
            return connection.respond(HTTPStatus.FORBIDDEN, "Access key not valid; use the URL the server printed.\n")
        rest = urlencode([(name, value) for name, value in parse_qs(query).items() if name != "key"], doseq=True)
        secure = "; Secure" if self.config.tls_cert else ""
        cookie = f"{self.access.cookie_name}={self.access.cookie_value()}; Path=/; HttpOnly; SameSite=Strict{secure}"
        headers = Headers(
            [
                ("Location", "/" + (f"?{rest}" if rest else "")),
                ("Set-Cookie", cookie),
                ("Cache-Control", "no-store"),
                ("Content-Length", "0"),
            ]
        )
        return Response(HTTPStatus.SEE_OTHER.value, HTTPStatus.SEE_OTHER.phrase, headers, b"")

    def _mint_token(self, connection: ServerConnection, request: Request, credentials: Credentials) -> Response:
        """``POST /v1alpha/auth_tokens``: an ephemeral token for whoever holds the key (or the page's cookie)."""
        if request.method != "POST":
            return _google_error(HTTPStatus.METHOD_NOT_ALLOWED, "POST a token request here")
        if self.config.api_key is None:
            address = connection.remote_address
            principal = f"address:{address[0] if address else 'unknown'}"
        elif self.access.key_valid(credentials.key) or self.access.page_cookie_valid(request.headers):
            principal = self.access.key_label()
        else:
            logger.warning("refused a token request from %s: bad or missing access key", connection.remote_address)
            return _google_error(HTTPStatus.UNAUTHORIZED, BAD_KEY_REASON)
        content_type = single_header(request.headers, "content-type") or ""
        if not content_type.lower().startswith("application/json"):
            return _google_error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the token request as application/json")
        body = request.body if isinstance(request, BodyRequest) else b""
        try:
            parsed = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return _google_error(HTTPStatus.BAD_REQUEST, "the token request is not valid JSON")
        if not isinstance(parsed, dict):
            return _google_error(HTTPStatus.BAD_REQUEST, "the token request must be a JSON object")
        try:
            token = self.tokens.mint(parsed, minted_by=principal)
        except TokenRequestError as exc:
            return _google_error(HTTPStatus.BAD_REQUEST, str(exc))
        logger.info("minted an ephemeral token for %s (%s uses)", principal, token.uses_left or "unlimited")
        response = _ok(json.dumps(token_response(token)).encode(), "application/json; charset=utf-8", cache="no-store")
        response.headers["Connection"] = "close"  # websockets closes after any plain HTTP answer
        return response

    def _personas(self) -> Response:
        """``/personas.json``: what a client may choose (reads the operator's persona files)."""
        catalog = self.persona_catalog() if self.persona_catalog else {"default": None, "personas": []}
        return _ok(json.dumps(catalog, ensure_ascii=False).encode(), "application/json; charset=utf-8")

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
        credentials = connection.credentials if isinstance(connection, LiveConnection) else Credentials()
        token = self.tokens.find(credentials.token) if credentials.token else None
        if credentials.token and token is None:
            await self._refuse(connection, CloseCode.POLICY_VIOLATION, "ephemeral token not valid or expired")
            return
        if token is not None:
            principal = token.minted_by  # a token's sessions count against the key that minted it
        elif self.access.key_valid(credentials.key):
            principal = self.access.key_label()
        elif self.config.api_key is None:
            address = connection.remote_address
            principal = f"address:{address[0] if address else 'unknown'}"
        else:
            logger.warning("refused %s: bad or missing access key", connection.remote_address)
            await self._refuse(connection, CloseCode.POLICY_VIOLATION, BAD_KEY_REASON)
            return
        refusal = await self.limits.admit(principal)
        if refusal is not None:
            logger.warning("refused %s: %s", connection.remote_address, refusal)
            await self._refuse(connection, CloseCode.TRY_AGAIN_LATER, refusal)
            return
        try:
            await self._run_session(connection, request, token.name if token is not None else None)
        finally:
            await self.limits.release(principal)

    async def _refuse(self, connection: ServerConnection, code: int, reason: str) -> None:
        # Like the real service, answer the setup with the close, so a client that sends
        # setup straight after the handshake (the SDK) reads the reason instead of a
        # broken pipe.
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            await asyncio.wait_for(connection.recv(), SETUP_GRACE_S)
        await connection.close(code, reason)

    async def _run_session(self, connection: ServerConnection, request: Request, token_name: str | None) -> None:
        transport: Transport = WebSocketTransport(connection)
        expiry: asyncio.Task[None] | None = None
        if token_name is not None:
            gate = TokenGate(transport, self.tokens, token_name)
            try:
                first = await asyncio.wait_for(connection.recv(), self.config.session.setup_timeout_s)
                token = gate.open(first)
            except (TimeoutError, ConnectionClosed):
                await connection.close(CloseCode.POLICY_VIOLATION, "no setup message in time; send setup first")
                return
            except TokenRefused as exc:
                await connection.close(CloseCode.POLICY_VIOLATION, str(exc))
                return
            expiry = asyncio.create_task(self._close_at_expiry(connection, token.expire_at))
            transport = gate
        session = Session(
            transport,
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
            with counted(session, self.backend.name):
                await session.run()
        finally:
            self.sessions.discard(session)
            if not self.sessions:
                self._no_sessions.set()
            if expiry is not None:
                expiry.cancel()

    @staticmethod
    async def _close_at_expiry(connection: ServerConnection, expire_at: float) -> None:
        """A token's sessions end with the token, as on Gemini; the page then asks for a new one and resumes."""
        await asyncio.sleep(max(0.0, expire_at - time.time()))
        await connection.close(CloseCode.POLICY_VIOLATION, "ephemeral token expired; ask the server for a new one")


def _is_tokens_path(path: str) -> bool:
    return bool(TOKENS_PATH.match(path.partition("?")[0]))
