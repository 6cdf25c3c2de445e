"""Reading HTTP requests on the websocket port: bounded bodies, and 400 for what cannot be read.

websockets reads the opening request itself and refuses any request with a
body, so ``POST /v1alpha/auth_tokens`` (a JSON body from the SDKs) would
never reach ``process_request``; a request it cannot parse at all gets no
answer, only a closed socket. Moving the whole server to another HTTP
framework would replace the websocket layer every test relies on, so this
module swaps in one piece instead: a ``ServerProtocol`` whose handshake
parser reads the request line and headers with websockets' own parsers and
then, for the few paths that take one, a body of at most ``max_body_bytes``
(its Content-Length is checked before a byte is read). Everything after the
handshake is websockets' unchanged frame parser. A request that cannot be
parsed gets a 400 written here, not a dropped connection. websockets'
``open_timeout`` bounds the whole exchange, body included.

After the handshake, frames are websockets' own parser's; only the reasons
it gives when it fails a connection (an oversized message, bad UTF-8, a
protocol violation) are replaced by the project's, so a client reads the
server's words and limits, never a library's message.

The parser is installed through ``serve(create_connection=...)``, the
library's documented hook: ``LiveConnection`` replaces the protocol that
``serve`` built with a ``BodyReadingProtocol`` of the same settings.

``LiveConnection`` can also hand each whole message to a ``message_sink``
from the socket's callback, before websockets queues it for ``recv``: a
session takes its microphone chunks there, sparing the wake-up of its
reader task per 20 ms chunk (``Session._client_frame_now``). Only a frame
that is a whole message (not fragmented) and has nothing queued before it
is offered; what the sink declines is queued as websockets always does, so
``recv`` returns every other message in order, and the limits, UTF-8
checks and close reasons stay websockets' and this module's.
"""

from __future__ import annotations

import http
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, ClassVar

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidMessage, SecurityError
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, parse_headers, parse_line
from websockets.protocol import CONNECTING, Event, Protocol
from websockets.server import ServerProtocol

from assistant.errors import AssistantError
from assistant.server.access import Credentials
from assistant.session.transport import MessageSink

DEFAULT_MAX_BODY_BYTES = 64 * 1024
# A final frame with one of these is a whole message (a continuation ends a fragmented one).
WHOLE_MESSAGE_OPCODES = frozenset({Opcode.TEXT, Opcode.BINARY})
# Why websockets' frame parser failed a connection, in the project's words.
FRAME_FAILURES: dict[int, str] = {
    CloseCode.PROTOCOL_ERROR: "websocket protocol error: send standard RFC 6455 frames",
    CloseCode.INVALID_DATA: "a text message is not valid UTF-8",
}


class BodyTooLarge(AssistantError):
    """A Content-Length over the limit for its path."""


@dataclass
class BodyRequest(Request):
    """A ``Request`` that may carry a small body (``b""`` for a websocket handshake)."""

    body: bytes = b""


# Whether (method, path) may carry a body, e.g. POST to the token endpoint.
BodyRule = Callable[[str, str], bool]


class BodyReadingProtocol(ServerProtocol):
    """websockets' server protocol, with a handshake parser that reads bounded bodies and answers 400."""

    def __init__(self, *args: Any, takes_body: BodyRule, max_body_bytes: int, **kwargs: Any) -> None:
        self.takes_body = takes_body
        self.max_body_bytes = max_body_bytes
        super().__init__(*args, **kwargs)

    def parse(self) -> Generator[None]:
        if self.state is CONNECTING:
            try:
                request = yield from self._read_request()
            except EOFError as exc:
                self.handshake_exc = InvalidMessage("connection closed before a full HTTP request")
                self.handshake_exc.__cause__ = exc
                self.send_eof()
                self.parser = self.discard()
                next(self.parser)
                yield
            except BodyTooLarge:
                self._refuse(
                    http.HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"Request body too large; this server takes at most {self.max_body_bytes} bytes.\n",
                )
                yield
            except SecurityError:
                self._refuse(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Request line or headers too large.\n")
                yield
            except (ValueError, UnicodeError, NotImplementedError):
                self._refuse(http.HTTPStatus.BAD_REQUEST, "Bad request: this server could not read it as HTTP/1.1.\n")
                yield
            self.events.append(request)
        yield from Protocol.parse(self)

    def fail(self, code: CloseCode | int, reason: str = "") -> None:
        """Fail the connection as websockets does, with the project's reason for the frame errors it names."""
        if code == CloseCode.MESSAGE_TOO_BIG:
            reason = f"message too large: this server takes at most {self.max_message_size} bytes a message"
        elif code in FRAME_FAILURES:
            reason = FRAME_FAILURES[code]
        super().fail(code, reason)

    def _refuse(self, status: http.HTTPStatus, text: str) -> None:
        self.handshake_exc = InvalidMessage(text.strip())
        self.send_response(self.reject(status, text))

    def _read_request(self) -> Generator[None, None, BodyRequest]:
        """Request line, headers (websockets' parsers and limits), then a body only where one is expected."""
        line = yield from parse_line(self.reader.read_line)
        parts = line.split(b" ")
        if len(parts) != 3 or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise ValueError("not an HTTP/1.1 request line")
        method, path, protocol = (part.decode("ascii") for part in parts)
        headers = yield from parse_headers(self.reader.read_line)
        if "Transfer-Encoding" in headers:
            raise NotImplementedError("transfer codings are not supported")
        lengths = set(headers.get_all("Content-Length"))
        body = b""
        if lengths - {"0"}:
            if len(lengths) != 1 or not next(iter(lengths)).isdigit() or not self.takes_body(method, path):
                raise ValueError("unexpected request body")
            size = int(next(iter(lengths)))
            if size > self.max_body_bytes:
                raise BodyTooLarge
            body = bytes((yield from self.reader.read_exact(size)))
        return BodyRequest(path, headers, method, protocol, body=body)


class LiveConnection(ServerConnection):
    """A server connection whose handshake parser is ``BodyReadingProtocol``.

    ``serve`` passes the protocol it built; this builds the body-reading one
    in its place with the same origins, extensions, subprotocols, message
    limit and logger (a ``select_subprotocol`` callback is not carried over;
    the server uses none). The server passes its rule and limit by
    subclassing (see ``connection_class``).
    """

    takes_body: BodyRule = staticmethod(lambda method, path: False)  # type: ignore[assignment]
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Every connection of the bound class, so a stopping server can find those still in their
    # handshake (websockets lists a connection only once it is open).
    accepted: ClassVar[weakref.WeakSet[LiveConnection]] = weakref.WeakSet()

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        replacement = BodyReadingProtocol(
            origins=protocol.origins,
            extensions=protocol.available_extensions,
            subprotocols=protocol.available_subprotocols,
            max_size=(protocol.max_message_size, protocol.max_fragment_size),
            logger=protocol.logger,
            takes_body=type(self).takes_body,
            max_body_bytes=self.max_body_bytes,
        )
        super().__init__(replacement, *args, **kwargs)
        self.credentials = Credentials()  # what the handshake presented, read once by the server
        self.message_sink: MessageSink | None = None
        type(self).accepted.add(self)

    def process_event(self, event: Event) -> None:
        """Offer a whole data message to ``message_sink`` when nothing waits for ``recv`` before it."""
        sink = self.message_sink
        if (
            sink is not None
            and isinstance(event, Frame)
            and event.fin
            and event.opcode in WHOLE_MESSAGE_OPCODES
            and not self.recv_messages.frames
            and sink(bytes(event.data))
        ):
            return
        super().process_event(event)


def connection_class(takes_body: BodyRule, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> type[LiveConnection]:
    """A ``LiveConnection`` subclass bound to one server's body rule and limit."""
    return type(
        "BoundLiveConnection",
        (LiveConnection,),
        {"takes_body": staticmethod(takes_body), "max_body_bytes": max_body_bytes, "accepted": weakref.WeakSet()},
    )
