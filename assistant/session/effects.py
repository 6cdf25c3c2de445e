"""The effects a ``SessionCore`` returns: what the asyncio driver must do, in order."""

from __future__ import annotations

from dataclasses import dataclass

from assistant.protocol import ClientEvent, CloseCode, FunctionCall, ServerEvent
from assistant.session.resumption import SavedSession


@dataclass(frozen=True, slots=True)
class SendToClient:
    """Queue ``event`` for the client; ``droppable`` events give way when the client falls behind."""

    event: ServerEvent
    droppable: bool = False


@dataclass(frozen=True, slots=True)
class SendToBackend:
    """Queue ``event`` for the backend; ``droppable`` events give way when the backend falls behind."""

    event: ClientEvent
    droppable: bool = False


@dataclass(frozen=True, slots=True)
class StartServerTool:
    """Run one of the server's tools; its answer comes back through ``tool_finished`` or ``tool_failed``."""

    call: FunctionCall


@dataclass(frozen=True, slots=True)
class CancelServerTool:
    """Stop a running server tool; the core already forgot the call."""

    call_id: str


@dataclass(frozen=True, slots=True)
class FlushReplyAudio:
    """Drop the reply audio still queued for the client: the user barged in."""


@dataclass(frozen=True, slots=True)
class SaveResumption:
    """Save ``saved`` under ``handle``, then report ``save_done`` or ``save_failed``.

    The driver fills in the backend's own state when it takes the effect.
    """

    handle: str
    saved: SavedSession
    retire_previous: bool = True


@dataclass(frozen=True, slots=True)
class DeleteHandle:
    """Retire a superseded handle; a failure only lets it expire by itself."""

    handle: str


@dataclass(frozen=True, slots=True)
class Close:
    """End the session with ``code`` and a reason the client can act on."""

    code: CloseCode
    reason: str


Effect = (
    SendToClient | SendToBackend | StartServerTool | CancelServerTool | FlushReplyAudio
    | SaveResumption | DeleteHandle | Close
)
