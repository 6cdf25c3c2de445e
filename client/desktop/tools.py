"""Server-side tool calls of an in-process session, shown as they happen.

When the session runs in this process, the app wraps the server's tool
registry so the view sees each call start and finish, with its time. (Over
``--connect`` the Live protocol carries no such event: only calls to
functions the client declared reach a client.)
"""

from __future__ import annotations

import json
import time

from assistant.protocol import FunctionCall, FunctionDeclaration, FunctionResponse
from assistant.session import ServerTools, ToolContext
from client.desktop.ui import TalkView

RESULT_PREVIEW_CHARS = 80


class WatchedTools:
    """Delegates to ``tools`` and reports every call to ``view``."""

    def __init__(self, tools: ServerTools, view: TalkView) -> None:
        self.tools = tools
        self.view = view

    def declarations(self) -> list[FunctionDeclaration]:
        return self.tools.declarations()

    def handles(self, name: str) -> bool:
        return self.tools.handles(name)

    async def call(self, call: FunctionCall, context: ToolContext) -> FunctionResponse:
        self.view.tool_call(f"{call.name}({json.dumps(call.args, ensure_ascii=False)}) …")
        started = time.perf_counter()
        response = await self.tools.call(call, context)
        result = json.dumps(response.response, ensure_ascii=False)
        if len(result) > RESULT_PREVIEW_CHARS:
            result = result[: RESULT_PREVIEW_CHARS - 1] + "…"
        self.view.tool_call(f"{call.name} → {result} in {(time.perf_counter() - started) * 1000:.0f} ms")
        return response

    async def aclose(self) -> None:
        await self.tools.aclose()
