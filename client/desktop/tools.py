"""Server-side tool calls of an in-process session, shown as they happen.

When the session runs in this process, the app wraps the server's tool
registry so the view sees each call start and finish, with its time. (Over
``--connect`` the Live protocol carries no such event: only calls to
functions the client declared reach a client.)
"""

from __future__ import annotations

import json

from assistant.protocol import FunctionCall, FunctionResponse
from assistant.session import ServerTools
from assistant.session.tools import WatchedTools
from client.desktop.ui import TalkView

RESULT_PREVIEW_CHARS = 80


def shown_tools(tools: ServerTools, view: TalkView) -> WatchedTools:
    """``tools``, with every call and its result reported to ``view``."""

    def started(call: FunctionCall) -> None:
        view.tool_call(f"{call.name}({json.dumps(call.args, ensure_ascii=False)}) …")

    def ended(call: FunctionCall, response: FunctionResponse | None, seconds: float) -> None:
        if response is None:
            view.tool_call(f"{call.name} stopped after {seconds * 1000:.0f} ms")
            return
        result = json.dumps(response.response, ensure_ascii=False)
        if len(result) > RESULT_PREVIEW_CHARS:
            result = result[: RESULT_PREVIEW_CHARS - 1] + "…"
        view.tool_call(f"{call.name} → {result} in {seconds * 1000:.0f} ms")

    return WatchedTools(tools, on_start=started, on_end=ended)
