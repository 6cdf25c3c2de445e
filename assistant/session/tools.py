"""The seam between sessions and server-side tools.

A session sends tool calls for functions the client declared to the client,
and calls for server-side tools to a ``ServerTools`` implementation (the
registry in ``assistant.tools``). Validation, timeouts and error shaping are
the registry's job; the session only routes, tracks ids and cancels.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from assistant.protocol import FunctionCall, FunctionDeclaration, FunctionResponse, VideoFrame
from assistant.session.profiles import SessionProfile


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a server-side tool may use beyond its arguments.

    ``send_response`` delivers a later result for the same call (a timer that
    fires minutes after ``set_timer`` returned), with the scheduling the
    response names. ``latest_frame`` is the newest camera or screen frame the
    client sent in this session, for tools that look (``describe_view``).
    ``profile`` is the session's profile (a persona), for tools whose
    defaults depend on it (the knowledge collection ``search_knowledge``
    searches).
    """

    session_id: str
    send_response: Callable[[FunctionResponse], Awaitable[None]]
    latest_frame: Callable[[], VideoFrame | None] = lambda: None
    profile: SessionProfile | None = None


@runtime_checkable
class ServerTools(Protocol):
    """Tools that run in the server process."""

    def declarations(self) -> list[FunctionDeclaration]:
        """Declarations offered to the model next to the client's."""
        ...

    def handles(self, name: str) -> bool:
        """Whether ``name`` is one of these tools."""
        ...

    async def call(self, call: FunctionCall, context: ToolContext) -> FunctionResponse:
        """Run one call to completion; errors come back as a response, not an exception."""
        ...

    async def aclose(self) -> None:
        """Stop what is still running (timers, MCP servers) when the server or app ends."""
        ...


class NoServerTools:
    """The empty tool set: every call goes to the client or is unknown."""

    def declarations(self) -> list[FunctionDeclaration]:
        return []

    def handles(self, name: str) -> bool:
        return False

    async def call(self, call: FunctionCall, context: ToolContext) -> FunctionResponse:
        raise LookupError(f"no server-side tool named {call.name}")

    async def aclose(self) -> None:
        """Nothing runs, so nothing to stop."""
