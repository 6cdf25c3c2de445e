"""Finding tools: built-ins, installed plugins, named modules, MCP servers.

Sources are loaded in a fixed order (built-ins, entry points, modules, MCP
servers), so when two offer the same name the first keeps it and the
second is reported. Anything that fails (an import error, a signature that
cannot become a schema, an MCP server that does not start) is recorded in
``registry.problems`` and skipped: one broken plugin never takes the server
down.

An entry point in the ``assistant.tools`` group (or a module named with
``--tools`` or in the config) may name a ``@tool`` function, a plain typed
function, a list of tools, or a module, whose tools are all taken.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.metadata
import importlib.util
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from assistant.config import Config, McpServerConfig
from assistant.knowledge.service import KnowledgeService
from assistant.tools.base import DEFAULT_TIMEOUT_S, BaseTool
from assistant.tools.builtin import builtin_tools
from assistant.tools.clock import Clock
from assistant.tools.decorator import FunctionTool
from assistant.tools.registry import DuplicateTool, ToolRegistry
from assistant.tools.schema import SchemaError

ENTRY_POINT_GROUP = "assistant.tools"


@dataclass(frozen=True, slots=True)
class ToolSources:
    """Where the tools of one server come from.

    ``knowledge`` is the store memory and ``search_knowledge`` share, owned
    by the caller (a server shares it with its personas); without one the
    registry opens the data dir's on first use and closes it with itself.
    """

    builtins: bool = True
    entry_points: bool = True
    modules: Sequence[str] = ()
    mcp_servers: Sequence[McpServerConfig] = ()
    disable: Sequence[str] = ()
    default_timeout_s: float = DEFAULT_TIMEOUT_S
    knowledge: KnowledgeService | None = field(default=None, compare=False)
    clock: Clock | None = field(default=None, compare=False)

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        modules: Sequence[str] = (),
        builtins: bool = True,
        knowledge: KnowledgeService | None = None,
    ) -> ToolSources:
        """The config file's ``[tools]`` plus modules and switches given on the command line."""
        section = config.tools
        return cls(
            knowledge=knowledge,
            builtins=builtins and section.builtins,
            modules=[*section.modules, *modules],
            mcp_servers=[server for server in section.mcp if server.enabled],
            disable=section.disable,
            default_timeout_s=section.timeout,
        )


def describe_failure(exc: BaseException, locate: bool = True) -> str:
    """One line for a plugin author: the error and (``locate``) the line of their code that raised it."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]  # anyio wraps a transport's failure in task-group layers
    if not locate:
        return f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    own = [frame for frame in frames if "importlib" not in frame.filename]
    where = f" ({own[-1].filename}:{own[-1].lineno})" if own else ""
    return f"{type(exc).__name__}: {exc}{where}"


def collect_tools(value: Any, origin: str) -> list[BaseTool]:
    """The tools ``value`` offers: a tool, a typed function, a list of either, or a module of tools."""
    if isinstance(value, BaseTool):
        return [value]
    if isinstance(value, ModuleType):
        seen: dict[int, BaseTool] = {}
        for item in vars(value).values():
            if isinstance(item, BaseTool):
                seen.setdefault(id(item), item)
        if not seen:
            raise LookupError(f"module {value.__name__} defines no tools (decorate functions with @tool)")
        return list(seen.values())
    if isinstance(value, (list, tuple)):
        return [tool for item in value for tool in collect_tools(item, origin)]
    if callable(value):
        return [FunctionTool(value)]
    raise TypeError(f"{origin} is a {type(value).__name__}; expected a @tool function, a list of tools or a module")


def import_tool_module(spec: str) -> ModuleType:
    """Import ``spec``: a module name (``my_tools``), or a Python file (``./my_tools.py``)."""
    if not (spec.endswith(".py") or "/" in spec):
        return importlib.import_module(spec)
    path = Path(spec).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    name = f"assistant_tools_file_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # pydantic and typing look types up through sys.modules
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def register_all(registry: ToolRegistry, tools: Iterable[BaseTool], source: str) -> None:
    """Add each tool; a duplicate name or bad schema skips that tool only."""
    for tool in tools:
        try:
            registry.add(tool, source)
        except (DuplicateTool, SchemaError) as exc:
            registry.report(f"{source}: tool {tool.name}", str(exc))


def _register_loaded(registry: ToolRegistry, source: str, load: Callable[[], Any]) -> None:
    try:
        tools = collect_tools(load(), source)
    except Exception as exc:
        registry.report(source, describe_failure(exc), exc)
        return
    register_all(registry, tools, source)


def _entry_point_source(entry_point: importlib.metadata.EntryPoint) -> str:
    dist = entry_point.dist
    package = f" from {dist.name} {dist.version}" if dist is not None else ""
    return f"entry point {entry_point.name} = {entry_point.value}{package}"


async def _connect_mcp(config: McpServerConfig) -> Any:
    """The server's connection and tool listing (imported late: ``mcp`` is an optional extra)."""
    from assistant.tools.mcp_client import McpConnection

    connection = McpConnection(config)
    try:
        await connection.connect()
        return connection, await connection.list_tools()
    except BaseException:
        await connection.close()
        raise


async def _load_mcp_servers(registry: ToolRegistry, servers: Sequence[McpServerConfig]) -> None:
    if not servers:
        return
    try:
        from assistant.tools.mcp_client import mcp_tool
    except ModuleNotFoundError as exc:
        for server in servers:
            registry.report(f"mcp {server.name}", f"{exc.name} is missing; install live-assistant[mcp]")
        return
    outcomes = await asyncio.gather(*(_connect_mcp(server) for server in servers), return_exceptions=True)
    for server, outcome in zip(servers, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            registry.report(f"mcp {server.name}", f"cannot connect: {describe_failure(outcome, locate=False)}", outcome)
            continue
        connection, listed = outcome
        registry.on_close(connection.close)
        tools = []
        for remote in listed:
            try:
                tools.append(mcp_tool(connection, remote))
            except SchemaError as exc:
                registry.report(f"{connection.source}: tool {remote.name}", str(exc))
        register_all(registry, tools, connection.source)


async def load_tools(sources: ToolSources) -> ToolRegistry:
    """A registry with every tool ``sources`` name; what failed is in ``registry.problems``."""
    registry = ToolRegistry(default_timeout_s=sources.default_timeout_s)
    if sources.builtins:
        knowledge = sources.knowledge
        if knowledge is None:
            knowledge = KnowledgeService()
            registry.on_close(knowledge.aclose)
        register_all(registry, builtin_tools(clock=sources.clock, knowledge=knowledge), "builtin")
    if sources.entry_points:
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            _register_loaded(registry, _entry_point_source(entry_point), entry_point.load)
    for module in sources.modules:
        _register_loaded(registry, f"module {module}", functools.partial(import_tool_module, module))
    await _load_mcp_servers(registry, sources.mcp_servers)
    for name in sources.disable:
        if not registry.remove(name):
            registry.report(f"disable {name}", "there is no tool of that name to disable")
    return registry
