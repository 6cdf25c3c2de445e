"""Tools from MCP servers, over stdio (a subprocess) or streamable HTTP, with the ``mcp`` package.

Each configured server gets one long-lived connection, owned by a task of
its own (the ``mcp`` client is built on anyio scopes, which must be entered
and left by the same task). Its tools become ``RawTool``s: the registry
validates arguments against the server's input schema, applies the timeout
and cancellation, and this module only forwards the call and turns the
result into JSON: structured content when the server gives it, else the
text of its content blocks. A result flagged ``isError`` is a ``ToolError``,
so the model reads the server's message. If the server goes away, the next
call reconnects once before giving up with a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import CONNECTION_CLOSED, CallToolResult, Tool

from assistant.config import McpServerConfig
from assistant.tools.base import CallContext, ToolError
from assistant.tools.decorator import RawTool, ToolSettings, raw_tool

logger = logging.getLogger("assistant.tools.mcp")

CONNECT_TIMEOUT_S = 30.0


async def _enter_transport(config: McpServerConfig, stack: contextlib.AsyncExitStack) -> Any:
    """What ``mcp.Client`` connects to; an HTTP client with headers is closed with ``stack``."""
    if config.command is not None:
        return StdioServerParameters(command=config.command, args=config.args, env=config.env or None, cwd=config.cwd)
    assert config.url is not None
    if not config.headers:
        return config.url
    http = await stack.enter_async_context(create_mcp_http_client(headers=config.headers))
    return streamable_http_client(config.url, http_client=http)


class McpConnection:
    """One MCP server's session, kept open by an owner task until ``close``."""

    def __init__(self, config: McpServerConfig) -> None:
        self.config = config
        self.name = config.name
        self._client: Client | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def source(self) -> str:
        where = " ".join([self.config.command or "", *self.config.args]) if self.config.command else self.config.url
        return f"mcp {self.name} ({self.config.transport}: {where})"

    async def connect(self) -> None:
        """Start the server (stdio) or reach it (HTTP) and finish the MCP handshake."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._owner = asyncio.create_task(self._own(ready), name=f"mcp-{self.name}")
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await asyncio.shield(ready)
        except BaseException:
            await self.close()
            if ready.done() and not ready.cancelled():
                ready.exception()  # already reported by the await above
            raise

    async def _own(self, ready: asyncio.Future[None]) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                client = await stack.enter_async_context(Client(await _enter_transport(self.config, stack)))
                self._client = client
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else ConnectionError(repr(exc)))
            elif not self._stop.is_set():
                logger.warning("MCP server %s disconnected: %r", self.name, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            self._client = None

    async def list_tools(self) -> list[Tool]:
        client = await self._connected()
        tools: list[Tool] = []
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                return tools

    async def _connected(self) -> Client:
        async with self._lock:
            if self._client is None:
                logger.info("reconnecting to MCP server %s", self.name)
                try:
                    await self.connect()
                except Exception as exc:
                    raise ToolError(f"the MCP server {self.name} is not available ({exc})") from exc
            assert self._client is not None
            return self._client

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        client = await self._connected()
        try:
            result = await client.call_tool(name, arguments)
        except MCPError as exc:
            # A JSON-RPC error from the server, or the connection closing under the call: the
            # model hears it, and a server that went away is started again by the next call.
            logger.warning("MCP server %s failed a call to %s: %s", self.name, name, exc)
            if exc.code == CONNECTION_CLOSED:
                await self.close()
            raise ToolError(f"the MCP server {self.name} failed: {exc}") from exc
        return _result_value(result, f"{self.name}/{name}")

    async def close(self) -> None:
        self._stop.set()
        if self._owner is not None:
            owner, self._owner = self._owner, None
            try:
                async with asyncio.timeout(5):
                    await owner
            except BaseException:
                owner.cancel()
                with contextlib.suppress(BaseException):
                    await owner


def _result_value(result: CallToolResult, where: str) -> Any:
    """The JSON the model gets for an MCP result."""
    parts = []
    for block in result.content:
        text = getattr(block, "text", None)
        if text is not None:
            parts.append(text)
        else:
            kind = getattr(block, "mime_type", None) or block.type
            parts.append(f"[{block.type} content ({kind}) not shown]")
    text = "\n".join(parts)
    if result.is_error:
        raise ToolError(text or f"{where} reported an error")
    if result.structured_content is not None:
        return result.structured_content
    return text


def mcp_tool(connection: McpConnection, listed: Tool) -> RawTool:
    """A registry tool that forwards to ``listed`` on ``connection``."""
    remote_name = listed.name

    async def forward(arguments: dict[str, Any], context: CallContext) -> Any:
        return await connection.call(remote_name, arguments)

    schema = dict(listed.input_schema or {"type": "object"})
    schema.setdefault("type", "object")
    settings: ToolSettings = {} if connection.config.timeout is None else {"timeout": connection.config.timeout}
    return raw_tool(
        f"{connection.config.prefix}{remote_name}",
        listed.description or listed.title or remote_name,
        schema,
        forward,
        **settings,
    )
