"""The ``describe_view`` server tool: what the camera or screen shows, in words.

Contract (docs/plugins.md, built-in tools): no parameters, BLOCKING; on
success ``{"output": {"description": "Text: 'OPEN 9 TO 5'. One face. ..."}}``,
and an error the model can read when no frame was sent. ``describe_view_tool``
is registered like any plugin, through this package's own ``assistant.tools``
entry point, so a server without the vision extra reports it as skipped
instead of failing.
"""

from __future__ import annotations

import threading
from typing import Protocol

from assistant.errors import AssistantError
from assistant.protocol import VideoFrame
from assistant.tools import CallContext, ToolError, tool
from vision.describe import ViewDescriber, VisionUnavailable
from vision.frames import ImageDecodeError

NAME = "describe_view"
DESCRIPTION = (
    "Describe what the user's camera or shared screen shows right now: text that can be read, "
    "how many faces, what objects it looks like, the main colours and the light. "
    "Use it when the user asks what you see, to read something, or about something they are holding up."
)


class SeesFrames(Protocol):
    """Anything that knows the session's newest frame (a tool's ``CallContext``)."""

    def latest_frame(self) -> VideoFrame | None: ...


class ViewUnavailable(AssistantError):
    """The view cannot be described; the message is written for the model to relay."""


_shared: ViewDescriber | None = None
_shared_lock = threading.Lock()


def shared_describer() -> ViewDescriber:
    """The process-wide describer with the default analysers (models load once, on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ViewDescriber()
        return _shared


async def describe_view(context: SeesFrames, describer: ViewDescriber | None = None) -> dict[str, str]:
    """Describe the newest camera or screen frame the user sent in this session.

    Raises ``ViewUnavailable`` (with a message for the model) when there is no
    frame, the frame is not an image, or no analyser can run here.
    """
    frame = context.latest_frame()
    if frame is None:
        raise ViewUnavailable(
            "no camera or screen frame has been sent in this session; ask the user to turn on the camera "
            "or share the screen"
        )
    try:
        description = await (describer or shared_describer()).describe_async(frame)
    except ImageDecodeError as error:
        raise ViewUnavailable(f"the latest frame ({frame.mime_type}) could not be read as an image: {error}") from error
    except VisionUnavailable as error:
        raise ViewUnavailable(f"vision is not available on this server: {error}") from error
    return {"description": description.text}


@tool(name=NAME, description=DESCRIPTION)
async def describe_view_tool(context: CallContext) -> dict[str, str]:
    """The registered tool: ``describe_view`` with its failures shown to the model."""
    try:
        return await describe_view(context)
    except ViewUnavailable as error:
        raise ToolError(str(error)) from error
