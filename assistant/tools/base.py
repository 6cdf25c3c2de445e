"""What every tool shares, whatever made it: a spec, a way to run, errors, a call context.

A tool is a ``ToolSpec`` (name, description, JSON Schema of its arguments,
behaviour, timeout) and a ``bind`` step that turns validated arguments into a
zero-argument callable. The registry decides how that callable runs (awaited
on the loop, or in a cancellable thread), so a typed Python function, a
raw-schema handler and a tool on an MCP server all get the same validation,
timeout, cancellation and error rules.
"""

from __future__ import annotations

import asyncio
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from assistant.errors import AssistantError
from assistant.protocol import FunctionDeclaration, VideoFrame
from assistant.protocol.models import Behavior, Scheduling
from assistant.session.tools import ToolContext
from assistant.tools.schema import SchemaError, gemini_parameters

# Gemini's rule for function names: a letter or underscore first, then letters,
# digits, underscores, dots and dashes, 64 characters at most.
TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
DEFAULT_TIMEOUT_S = 30.0


class ToolError(AssistantError):
    """A failure the model should hear about, in words it can act on.

    Raise it for expected problems ("no city called Atlantis", "the timer must
    be under a week"): the message goes to the model as ``{"error": message}``.
    Any other exception is a bug: it is logged with its traceback and the
    model gets a generic failure, never the internals.
    """


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """How the model sees a tool and how the registry runs it.

    ``parameters`` is a JSON Schema (draft 2020-12) object: arguments are
    validated against it before every call, and the Gemini declaration is
    derived from it. ``scheduling`` is the hint on a non-blocking tool's
    result (WHEN_IDLE unless the tool says otherwise). ``cancellable`` false
    lets a call finish (its result discarded) when the model cancels it, for
    tools whose side effect should not be cut in half. ``timeout_s`` None
    means the registry's default. ``read_only`` says a call only reads
    (the time, a sum, a search): it changes nothing a user could notice, so
    a session may run it before the user has finished speaking and throw
    its answer away if they go on (see ``ServerTools.read_only``).
    """

    name: str
    description: str
    parameters: dict[str, Any]
    behavior: Behavior = "BLOCKING"
    scheduling: Scheduling | None = None
    timeout_s: float | None = None
    cancellable: bool = True
    read_only: bool = False

    def __post_init__(self) -> None:
        if not TOOL_NAME.match(self.name):
            raise SchemaError(
                f"tool name {self.name!r} is not allowed: use letters, digits, _ . - "
                "(starting with a letter or _), 64 characters at most"
            )
        if self.parameters.get("type", "object") != "object":
            raise SchemaError(f"{self.name}: parameters must be a JSON Schema of type object")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise SchemaError(f"{self.name}: timeout must be positive")

    def declaration(self) -> FunctionDeclaration:
        """The Gemini function declaration: OpenAPI-subset ``parameters``, as every Gemini model accepts."""
        return FunctionDeclaration(
            name=self.name,
            description=self.description or None,
            parameters=gemini_parameters(self.parameters, self.name),
            behavior="NON_BLOCKING" if self.behavior == "NON_BLOCKING" else None,
        )

    @property
    def response_scheduling(self) -> Scheduling | None:
        """The hint on this tool's result: only non-blocking results carry one."""
        if self.behavior != "NON_BLOCKING":
            return None
        return self.scheduling or "WHEN_IDLE"


@dataclass(slots=True)
class FollowUp:
    """Work a non-blocking call left running; its outcome is a later response for the same call."""

    work: Awaitable[Any]
    scheduling: Scheduling


@dataclass(slots=True)
class CallContext:
    """What a running tool may know and do beyond its arguments.

    A tool asks for it by declaring a parameter annotated ``CallContext``
    (any name); that parameter is not part of the schema the model sees.

    ``cancelled`` is set when the call is cancelled or times out. Async tools
    are cancelled at their next ``await``. A sync tool that asks for the
    context is trusted to check ``cancelled`` (or call ``raise_if_cancelled``)
    and to stop cleanly; a sync tool that does not is interrupted in its
    thread (see ``threads``).
    """

    call_id: str
    tool_name: str
    session: ToolContext
    cancelled: threading.Event = field(default_factory=threading.Event)
    follow_ups: list[FollowUp] = field(default_factory=list)

    @property
    def session_id(self) -> str:
        return self.session.session_id

    def latest_frame(self) -> VideoFrame | None:
        """The newest camera or screen frame of this session, if the client sent one."""
        return self.session.latest_frame()

    def raise_if_cancelled(self) -> None:
        """Stop here when the call was cancelled (for long loops in sync tools)."""
        if self.cancelled.is_set():
            raise ToolCancelled(f"{self.tool_name} was cancelled")

    def follow_up(self, work: Awaitable[Any], scheduling: Scheduling = "INTERRUPT") -> None:
        """Deliver ``work``'s outcome later, as another response to this same call.

        For non-blocking tools that answer now ("timer started") and again
        later ("timer fired"): the first response says more will follow
        (``willContinue``), and the model hears the later one with
        ``scheduling``. Call it from an async tool, on the event loop.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("CallContext.follow_up must be called from an async tool, on the event loop") from None
        self.follow_ups.append(FollowUp(work, scheduling))


class ToolCancelled(BaseException):
    """Raised inside a sync tool's thread when its call was cancelled.

    A ``BaseException``, like ``asyncio.CancelledError``, so that a tool's
    ``except Exception`` does not swallow it.
    """


Invocation = Callable[[], Any]


class BaseTool(ABC):
    """A tool the registry can run: a spec and a way to bind validated arguments."""

    spec: ToolSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    @abstractmethod
    def is_async(self) -> bool:
        """Whether ``bind``'s callable returns an awaitable (else it runs in a thread)."""

    @property
    def watches_cancellation(self) -> bool:
        """Whether the tool checks ``CallContext.cancelled`` itself, so its thread is left to stop on its own."""
        return False

    @abstractmethod
    def bind(self, arguments: dict[str, Any], context: CallContext) -> Invocation:
        """A callable that runs the tool on ``arguments``, already checked against ``spec.parameters``."""
