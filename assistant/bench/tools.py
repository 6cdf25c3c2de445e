"""``assistant bench tools``: what the tool registry costs per call, an MCP round trip, memory at scale.

- the registry's own overhead (argument validation, timeout, result
  shaping) on an async and a sync echo tool, and on ``calculate``;
- a call to a tool of an MCP server over stdio (needs the ``mcp`` extra),
  and what starting that server and its handshake cost;
- the memory tool's store: remembering a fact (embedding plus insert) and
  recalling over all of them (embedding plus vector search).

Memory timings are the embedding's: on a busy 2-core machine,
OPENBLAS_NUM_THREADS=1 made a one-sentence embedding several times faster
than the default thread pool.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from assistant.bench.report import Distribution, Machine, format_table, publish, seed_everything
from assistant.protocol import FunctionCall, FunctionResponse
from assistant.session import ToolContext
from assistant.tools import ToolRegistry, tool
from assistant.tools.builtin.calculator import calculate

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


@dataclass(frozen=True, slots=True)
class Sizes:
    registry_calls: int = 500
    mcp_calls: int = 200
    facts: int = 500
    recalls: int = 50

    @classmethod
    def quick(cls) -> Sizes:
        return cls(registry_calls=100, mcp_calls=30, facts=40, recalls=10)


async def timed(call: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    """Microseconds per call."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        await call()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


async def registry_overhead(repeat: int) -> dict[str, Distribution | None]:
    registry = ToolRegistry()
    for each in (async_echo, sync_echo, tool(calculate)):
        registry.add(each)

    async def unused(response: FunctionResponse) -> None: ...

    context = ToolContext(session_id="bench", send_response=unused)
    rows = {}
    for name, args in [
        ("async_echo", {"text": "hi"}),
        ("sync_echo", {"text": "hi"}),
        ("calculate", {"expression": "sqrt(2) * (3 + 4) ** 2"}),
    ]:
        call = FunctionCall(id="b", name=name, args=args)
        rows[f"registry call: {name}"] = Distribution.of(
            await timed(lambda call=call: registry.call(call, context), repeat)  # type: ignore[misc]
        )
    return rows


async def mcp_round_trip(repeat: int) -> tuple[dict[str, Distribution | None], str | None]:
    """The MCP rows, or why there are none."""
    try:
        from assistant.config import McpServerConfig
        from assistant.tools.mcp_client import McpConnection
    except ModuleNotFoundError as exc:
        return {}, f"{exc.name} is missing: pip install 'live-assistant[mcp]'"
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "bench_server.py"
        script.write_text(MCP_SERVER)
        connection = McpConnection(McpServerConfig(name="bench", command=sys.executable, args=[str(script)]))
        started = time.perf_counter_ns()
        await connection.connect()
        handshake = (time.perf_counter_ns() - started) / 1000
        try:
            calls = await timed(lambda: connection.call("echo", {"text": "hi"}), repeat)
        finally:
            await connection.close()
    rows = {
        "MCP stdio: start and handshake": Distribution.of([handshake]),
        "MCP stdio: call echo": Distribution.of(calls),
    }
    return rows, None


def memory_at_scale(facts: int, queries: int) -> dict[str, Distribution | None]:
    from assistant.knowledge.service import KnowledgeService
    from assistant.tools.builtin.memory import MemoryStore

    with tempfile.TemporaryDirectory() as folder:
        knowledge = KnowledgeService(Path(folder) / "knowledge")
        store = MemoryStore(knowledge)
        store.remember("warm up: the embedding model loads on first use")
        remembered = []
        for i in range(facts):
            started = time.perf_counter_ns()
            store.remember(f"fact number {i}: the item {i % 97} is kept in box {i % 13}")
            remembered.append((time.perf_counter_ns() - started) / 1000)
        recalled = []
        for i in range(queries):
            started = time.perf_counter_ns()
            store.recall(f"where is item {i % 97} stored", limit=3)
            recalled.append((time.perf_counter_ns() - started) / 1000)
        knowledge.close()
    return {
        "memory: remember (embed + insert)": Distribution.of(remembered),
        f"memory: recall over {facts} facts": Distribution.of(recalled),
    }


def run(args: argparse.Namespace) -> int:
    seed_everything(args.seed)
    sizes = Sizes.quick() if args.quick else Sizes()
    machine = Machine.now()
    rows = asyncio.run(registry_overhead(sizes.registry_calls))
    mcp_rows, mcp_missing = asyncio.run(mcp_round_trip(sizes.mcp_calls))
    rows |= mcp_rows
    rows |= memory_at_scale(sizes.facts, sizes.recalls)
    machine.finish()
    table = [[name, row.p50, row.p95, row.max, row.n] for name, row in rows.items() if row is not None]
    print("assistant bench tools\n")
    print(format_table(["us per call", "p50", "p95", "max", "n"], table))
    if mcp_missing:
        print(f"MCP: unavailable: {mcp_missing}")
    print(machine.describe())
    report = {
        "benchmark": "tools",
        "seed": args.seed,
        "quick": args.quick,
        "machine": machine.to_json(),
        "sizes": asdict(sizes),
        "calls_us": {name: asdict(row) for name, row in rows.items() if row is not None},
        "unavailable": {"mcp": mcp_missing} if mcp_missing else {},
    }
    publish(args, report)
    return 0
