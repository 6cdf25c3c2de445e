"""The seam between a session and whatever produces the replies.

A ``Backend`` is created once per server and owns what sessions share (loaded
models, an HTTP client). Each connection opens a ``BackendStream`` that takes
normalised client events and yields server events (``ServerEvent``). The session manager does
the rest (handshake, queues, tool routing, resumption), so a backend never
sees the wire, the socket or which kind of client is attached.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from assistant.errors import AssistantError
from assistant.protocol import ClientEvent, Content, ServerEvent, Setup
from assistant.protocol.errors import CloseCode, new_error_id, with_error_id
from assistant.session.limits import DEFAULT_HISTORY_BYTES


class BackendError(AssistantError):
    """A backend failure the client should hear about as a close code and reason.

    Raise it from ``open``, ``send`` or ``receive`` with Gemini's own reason (a
    rejected key, an unknown model) or a local one (a model that failed to
    load); the session closes the connection with it instead of a stack trace.
    The reason is written by the project; what a library said (an exception's
    text, an upstream address, a file path) goes in ``detail``, which only the
    log shows, and the reason then carries an error id the log line repeats.
    """

    def __init__(self, reason: str, code: CloseCode = CloseCode.INTERNAL_ERROR, detail: str | None = None) -> None:
        self.error_id = new_error_id() if detail is not None else None
        self.reason = with_error_id(reason, self.error_id) if self.error_id is not None else reason
        super().__init__(self.reason)
        self.code = code
        self.detail = detail


@dataclass(slots=True)
class SessionRequest:
    """Everything a backend needs to open one conversation.

    ``setup`` is the client's setup merged with server-side settings (server
    tools appended to the declarations). ``history`` is the conversation so
    far when a client resumes; ``backend_state`` is what this backend's
    ``resumption_state`` returned last time, for continuity it manages itself.
    ``history_bytes`` caps what a backend keeps of the conversation itself.
    """

    session_id: str
    setup: Setup
    history: list[Content] = field(default_factory=list)
    backend_state: dict[str, Any] | None = None
    history_bytes: int = DEFAULT_HISTORY_BYTES


class BackendStream(ABC):
    """One conversation with a backend: client events in, server events out."""

    @abstractmethod
    async def send(self, event: ClientEvent) -> None:
        """Deliver one client event. Should return quickly; heavy work belongs elsewhere."""

    def send_now(self, event: ClientEvent) -> bool:
        """Deliver ``event`` if that needs no waiting; False when nothing was done (then ``send`` it).

        The session offers an event here first when nothing is queued ahead
        of it, sparing a task switch per 20 ms chunk; a backend that cannot
        tell says False.
        """
        return False

    @abstractmethod
    def receive(self) -> AsyncIterator[ServerEvent]:
        """Yield server events for the life of the session, across turns.

        The iterator ending means the backend session is over; raising
        ``BackendError`` ends it with that code and reason.
        """

    def resumption_state(self) -> dict[str, Any] | None:
        """JSON-serialisable state to hand back on resumption (e.g. an upstream handle)."""
        return None

    @abstractmethod
    async def close(self) -> None:
        """Release the session's resources. Called once, whatever ended the session."""


class Backend(ABC):
    """A source of replies shared by all sessions of a server."""

    name: str = "backend"

    async def start(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Load what sessions share (models, clients) before the first connection."""

    @abstractmethod
    async def open(self, request: SessionRequest) -> BackendStream:
        """Open one conversation; raise ``BackendError`` when it cannot start."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Release what ``start`` acquired."""
