"""The ``describe_view`` server tool: what the camera or screen shows, in words.

Contract (shared/docs/tool-contracts.md): no parameters, BLOCKING; on
success ``{"output": {"description": "Text: 'OPEN 9 TO 5'. One face. ..."}}``,
and an error the model can read when no frame was sent. The function is a
plain typed coroutine so the tools registry can register it as it registers
every other tool; until then ``declaration`` and ``respond`` give the wire
shapes directly.
"""

from __future__ import annotations

import threading

from assistant.protocol import FunctionCall, FunctionDeclaration, FunctionResponse
from assistant.session.tools import ToolContext
from vision.describe import ViewDescriber, VisionUnavailable
from vision.frames import ImageDecodeError

NAME = "describe_view"
DESCRIPTION = (
    "Describe what the user's camera or shared screen shows right now: text that can be read, "
    "how many faces, what objects it looks like, the main colours and the light. "
    "Use it when the user asks what you see, to read something, or about something they are holding up."
)


class ViewUnavailable(Exception):
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


async def describe_view(context: ToolContext, describer: ViewDescriber | None = None) -> dict[str, str]:
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


def declaration() -> FunctionDeclaration:
    """How the tool is offered to the model."""
    return FunctionDeclaration(name=NAME, description=DESCRIPTION, parameters={"type": "OBJECT", "properties": {}})


async def respond(call: FunctionCall, context: ToolContext, describer: ViewDescriber | None = None) -> FunctionResponse:
    """A call answered in Gemini's convention: ``{"output": {...}}`` or ``{"error": "..."}``."""
    try:
        response: dict[str, object] = {"output": await describe_view(context, describer)}
    except ViewUnavailable as error:
        response = {"error": str(error)}
    return FunctionResponse(id=call.id, name=NAME, response=response)
