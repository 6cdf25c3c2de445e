"""MCP servers written with the ``mcp`` package's server API, called from a session end to end.

The scripted model emits a call, the session routes it to the registry,
the registry validates it and forwards it to the MCP server (a subprocess
over stdio, or a streamable-HTTP server on loopback), and the result goes
back to the model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.config import parse_config
from assistant.protocol import FunctionCall, FunctionResponse, ServerMessage
from assistant.tools import ToolRegistry
from assistant.tools.discovery import ToolSources, load_tools
from tests.support.scripted import ScriptedSession
from tests.support.tools import answer_texts, calling, collect_responses, tool_session

NOTES_SERVER = textwrap.dedent(
    '''
    import asyncio
    import os
    import socket
    import sys

    from pydantic import BaseModel
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("notes")


    class Total(BaseModel):
        total: int


    @server.tool()
    def add(a: int, b: int) -> Total:
        """Add two whole numbers."""
        return Total(total=a + b)


    @server.tool()
    def shout(text: str) -> str:
        """Say it louder."""
        return text.upper()


    @server.tool()
    def fail(reason: str) -> str:
        """Always refuses."""
        raise ValueError(reason)


    @server.tool()
    def die() -> str:
        """Crash the whole server process."""
        os._exit(1)


    @server.tool()
    async def wait(seconds: float) -> str:
        """Take a while."""
        await asyncio.sleep(seconds)
        return "done waiting"


    if __name__ == "__main__":
        if sys.argv[1:] == ["http"]:
            import uvicorn

            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(16)
            print(sock.getsockname()[1], flush=True)
            config = uvicorn.Config(server.streamable_http_app(), log_level="warning")
            asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))
        else:
            server.run("stdio")
    '''
)


@pytest.fixture
def notes_server(tmp_path: Path) -> Path:
    path = tmp_path / "notes_server.py"
    path.write_text(NOTES_SERVER)
    return path


@pytest.fixture
def http_notes_server(notes_server: Path) -> Iterator[str]:
    """The same server over streamable HTTP on a loopback port it picked itself."""
    process = subprocess.Popen([sys.executable, str(notes_server), "http"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


async def registry_from(config_text: str, tmp_path: Path) -> ToolRegistry:
    config_file = tmp_path / "config.toml"
    config_file.write_text(config_text)
    config = parse_config(config_text, config_file)
    sources = ToolSources.from_config(config, builtins=False)
    return await load_tools(dataclasses.replace(sources, entry_points=False))


def stdio_config(server: Path, extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        [[tools.mcp]]
        name = "notes"
        command = {str(sys.executable)!r}
        args = [{str(server)!r}]
        prefix = "notes_"
        {extra}
        """
    )


async def test_a_session_calls_a_stdio_mcp_tool_end_to_end(notes_server: Path, tmp_path: Path) -> None:
    registry = await registry_from(stdio_config(notes_server), tmp_path)
    try:
        assert registry.problems == []
        assert [t.spec.name for t in registry.tools()] == [
            "notes_add",
            "notes_shout",
            "notes_fail",
            "notes_die",
            "notes_wait",
        ]
        assert registry.tools()[0].source.startswith("mcp notes (stdio: ")
        add = registry.get("notes_add")
        assert add is not None
        assert add.declaration.model_dump(exclude_none=True) == {
            "name": "notes_add",
            "description": "Add two whole numbers.",
            "parameters": {
                "type": "OBJECT",
                "properties": {"a": {"type": "INTEGER"}, "b": {"type": "INTEGER"}},
                "required": ["a", "b"],
            },
        }
        responses: list[FunctionResponse] = []
        calls = [
            FunctionCall(id="1", name="notes_add", args={"a": 2, "b": 40}),
            FunctionCall(id="2", name="notes_shout", args={"text": "hello"}),
            FunctionCall(id="3", name="notes_fail", args={"reason": "no notes today"}),
            FunctionCall(id="4", name="notes_add", args={"a": "two", "b": 40}),
        ]
        async with tool_session(registry, calling(*calls, into=responses)) as (client, _):
            assert await client.heard() == "done"
            assert await client.ask("anything else?") == "echo: anything else?"
        by_id = {response.id: response.response for response in responses}
        assert by_id["1"] == {"output": {"total": 42}}
        assert by_id["2"] == {"output": {"result": "HELLO"}}
        assert by_id["3"] is not None and "error" in by_id["3"]  # the server's own error text, as a ToolError
        # Validated here against the server's input schema: the bad call never reached the server.
        assert by_id["4"] == {"error": "invalid arguments for notes_add: a: 'two' is not of type 'integer'"}
    finally:
        await registry.aclose()


async def test_barge_in_cancels_an_mcp_call_and_the_server_keeps_working(notes_server: Path, tmp_path: Path) -> None:
    registry = await registry_from(stdio_config(notes_server, "timeout = 20"), tmp_path)
    after: list[FunctionResponse] = []

    async def script(s: ScriptedSession) -> None:
        s.emit(ServerMessage.calls([FunctionCall(id="w", name="notes_wait", args={"seconds": 30})]))
        await asyncio.sleep(0.5)
        s.emit(ServerMessage.interrupted_turn(), ServerMessage.cancel_calls(["w"]))
        s.emit(ServerMessage.calls([FunctionCall(id="s", name="notes_shout", args={"text": "still here"})]))
        after.extend(await collect_responses(s, 1))
        s.emit(ServerMessage.output_transcript("done"), ServerMessage.turn_done())
        await answer_texts(s)

    try:
        async with tool_session(registry, script) as (client, _):
            assert await client.heard() == "done"
        assert [(r.id, r.response) for r in after] == [("s", {"output": {"result": "STILL HERE"}})]
    finally:
        await registry.aclose()


async def test_a_server_that_dies_is_an_error_for_that_call_and_restarted_for_the_next(
    notes_server: Path, tmp_path: Path
) -> None:
    registry = await registry_from(stdio_config(notes_server), tmp_path)
    responses: list[FunctionResponse] = []

    async def script(s: ScriptedSession) -> None:
        for call in [
            FunctionCall(id="d", name="notes_die"),
            FunctionCall(id="s", name="notes_shout", args={"text": "back"}),
        ]:
            s.emit(ServerMessage.calls([call]))
            responses.extend(await collect_responses(s, 1))
        s.emit(ServerMessage.output_transcript("done"), ServerMessage.turn_done())
        await answer_texts(s)

    try:
        async with tool_session(registry, script) as (client, _):
            assert await client.heard() == "done"
        died, back = responses
        assert died.response is not None and died.response["error"].startswith("the MCP server notes failed: ")
        assert back.response == {"output": {"result": "BACK"}}
    finally:
        await registry.aclose()


async def test_a_session_calls_a_streamable_http_mcp_tool(http_notes_server: str, tmp_path: Path) -> None:
    config = f'[[tools.mcp]]\nname = "web"\nurl = "{http_notes_server}"\nheaders = {{ X-Client = "assistant" }}\n'
    registry = await registry_from(config, tmp_path)
    try:
        assert registry.problems == []
        assert registry.tools()[0].source == f"mcp web (http: {http_notes_server})"
        responses: list[FunctionResponse] = []
        call = FunctionCall(id="1", name="add", args={"a": 20, "b": 22})
        async with tool_session(registry, calling(call, into=responses)) as (client, _):
            assert await client.heard() == "done"
        assert [r.response for r in responses] == [{"output": {"total": 42}}]
    finally:
        await registry.aclose()


async def test_an_mcp_server_that_cannot_start_is_reported_and_skipped(notes_server: Path, tmp_path: Path) -> None:
    config = stdio_config(notes_server) + textwrap.dedent(
        f"""
        [[tools.mcp]]
        name = "broken"
        command = {str(sys.executable)!r}
        args = ["-c", "import sys; sys.exit(3)"]
        """
    )
    registry = await registry_from(config, tmp_path)
    try:
        assert [problem.source for problem in registry.problems] == ["mcp broken"]
        assert registry.problems[0].message.startswith("cannot connect: ")
        assert registry.handles("notes_add")  # the good server's tools are all there
    finally:
        await registry.aclose()
