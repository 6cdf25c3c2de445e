"""What the tool registry costs per call, an MCP round trip, and memory recall at scale.

    .venv/bin/python benchmarks/tools_overhead.py

Prints p50 / p95 latencies. Timings on a shared machine are noisy: compare
runs on the same machine, not against a threshold. Memory timings are the
embedding's: on a busy 2-core machine, OPENBLAS_NUM_THREADS=1 made a
one-sentence embedding several times faster than the default thread pool.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from assistant.config import McpServerConfig
from assistant.protocol import FunctionCall, FunctionResponse
from assistant.session import ToolContext
from assistant.tools import ToolRegistry, tool
from assistant.tools.builtin.calculator import calculate
from assistant.tools.builtin.memory import MemoryStore
from assistant.tools.mcp_client import McpConnection

MCP_SERVER = textwrap.dedent(
    """
    from mcp.server.mcpserver import MCPServer
    server = MCPServer("bench")

    @server.tool()
    def echo(text: str) -> str:
        return text

    server.run("stdio")
    """
)


@tool
async def async_echo(text: str) -> str:
    """Echo."""
    return text


@tool
def sync_echo(text: str) -> str:
    """Echo."""
    return text


def report(label: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    print(f"{label:42s} p50 {statistics.median(ordered) * 1e6:9.0f} us   p95 {p95 * 1e6:9.0f} us   (n={len(ordered)})")


async def timed(call: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def registry_overhead(repeat: int = 500) -> None:
    registry = ToolRegistry()
    for each in (async_echo, sync_echo, tool(calculate)):
        registry.add(each)

    async def unused(response: FunctionResponse) -> None: ...

    context = ToolContext(session_id="bench", send_response=unused)
    for name, args in [
        ("async_echo", {"text": "hi"}),
        ("sync_echo", {"text": "hi"}),
        ("calculate", {"expression": "sqrt(2) * (3 + 4) ** 2"}),
    ]:
        call = FunctionCall(id="b", name=name, args=args)
        report(f"registry.call {name}", await timed(lambda call=call: registry.call(call, context), repeat))


async def mcp_round_trip(repeat: int = 200) -> None:
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "bench_server.py"
        script.write_text(MCP_SERVER)
        connection = McpConnection(McpServerConfig(name="bench", command=sys.executable, args=[str(script)]))
        started = time.perf_counter()
        await connection.connect()
        print(f"{'MCP stdio: start and handshake':42s} {time.perf_counter() - started:9.2f} s")
        try:
            report("MCP stdio: call echo", await timed(lambda: connection.call("echo", {"text": "hi"}), repeat))
        finally:
            await connection.close()


def memory_at_scale(facts: int = 500, queries: int = 50) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = MemoryStore(Path(folder) / "memory.sqlite3")
        started = time.perf_counter()
        for i in range(facts):
            store.remember(f"fact number {i}: the item {i % 97} is kept in box {i % 13}")
        per_fact = (time.perf_counter() - started) / facts
        print(f"{'memory: remember (embed + insert)':42s} mean {per_fact * 1e3:8.2f} ms per fact ({facts} facts)")
        samples = []
        for i in range(queries):
            started = time.perf_counter()
            store.recall(f"where is item {i % 97} stored", limit=3)
            samples.append(time.perf_counter() - started)
        report(f"memory: recall over {facts} facts", samples)
        store.close()


async def main() -> None:
    await registry_overhead()
    await mcp_round_trip()
    memory_at_scale()


if __name__ == "__main__":
    asyncio.run(main())
