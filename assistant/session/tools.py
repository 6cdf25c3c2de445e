"""The seam between sessions and server-side tools.

A session sends tool calls for functions the client declared to the client,
and calls for server-side tools to a ``ServerTools`` implementation (the
registry in ``assistant.tools``). Validation, timeouts and error shaping are
the registry's job; the session only routes, tracks ids and cancels.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from assistant.protocol import FunctionCall, FunctionDeclaration, FunctionResponse, Setup, Tool, VideoFrame
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

    def read_only(self, name: str) -> bool:
        """Whether a call of ``name`` changes nothing, so it may run before the user has finished.

        A backend that prepares its reply while the user pauses asks for such
        calls early (``EarlyToolCalls``): the answer is ready when the turn
        ends, and thrown away if the user goes on.
        """
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

    def read_only(self, name: str) -> bool:
        return False

    async def call(self, call: FunctionCall, context: ToolContext) -> FunctionResponse:
        raise LookupError(f"no server-side tool named {call.name}")

    async def aclose(self) -> None:
        """Nothing runs, so nothing to stop."""


class WatchedTools:
    """Server tools passed through, with hooks as each call starts and ends.

    For whoever wants to see calls happen without changing them: the
    terminal app shows them, the latency benchmark times them. ``on_end``
    runs whatever ended the call (a response, an error, a cancellation),
    with the response when there is one and the seconds it took.
    """

    def __init__(
        self,
        tools: ServerTools,
        on_start: Callable[[FunctionCall], None] = lambda call: None,
        on_end: Callable[[FunctionCall, FunctionResponse | None, float], None] = lambda call, response, s: None,
    ) -> None:
        self.tools = tools
        self._on_start = on_start
        self._on_end = on_end

    def declarations(self) -> list[FunctionDeclaration]:
        return self.tools.declarations()

    def handles(self, name: str) -> bool:
        return self.tools.handles(name)

    def read_only(self, name: str) -> bool:
        return self.tools.read_only(name)

    async def call(self, call: FunctionCall, context: ToolContext) -> FunctionResponse:
        self._on_start(call)
        started = time.perf_counter()
        response: FunctionResponse | None = None
        try:
            response = await self.tools.call(call, context)
            return response
        finally:
            self._on_end(call, response, time.perf_counter() - started)

    async def aclose(self) -> None:
        await self.tools.aclose()


def merge_server_tools(setup: Setup, tools: ServerTools, offers: Callable[[str], bool] = lambda name: True) -> Setup:
    """The setup a backend sees: the client's declarations plus the server's it ``offers``.

    A server tool the client also declared is left out: the client's own
    declaration wins, and the model never sees one name twice.
    """
    client_names = {declaration.name for declaration in setup.function_declarations()}
    extra = [d for d in tools.declarations() if d.name not in client_names and offers(d.name)]
    if not extra:
        return setup
    return setup.model_copy(update={"tools": [*(setup.tools or []), Tool(function_declarations=extra)]})
