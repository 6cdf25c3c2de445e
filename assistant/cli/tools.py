"""``assistant tools``: every tool the server would offer, with its source and schema.

It loads tools exactly as ``assistant serve`` does (built-ins, installed
plugins, ``--tools`` modules, the config file's modules and MCP servers),
so a plugin author sees what the model will see, and which plugins were
skipped and why. The exit status is 1 when anything was skipped, so a
plugin's CI can run it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from assistant.config import ConfigError, add_config_argument, load_config
from assistant.knowledge.service import KnowledgeService
from assistant.logs import configure_logging
from assistant.tools import ToolRegistry
from assistant.tools.discovery import ToolSources, load_tools


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tools",
        help="list the server-side tools with their sources and schemas",
        description="List every server-side tool (built-in, plugin, module, MCP) as the server would load it.",
    )
    add_tool_arguments(parser)
    add_config_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON (declarations, sources, problems)")
    parser.add_argument(
        "--log-level", default="error", choices=["debug", "info", "warning", "error"], help="default %(default)s"
    )
    parser.set_defaults(handler=run)


def add_tool_arguments(parser: argparse.ArgumentParser) -> None:
    """The tool options ``serve`` and ``tools`` share."""
    parser.add_argument(
        "--tools",
        action="append",
        default=[],
        metavar="MODULE",
        help="also load the tools of this module (import name or .py file; repeatable)",
    )
    parser.add_argument(
        "--no-builtin-tools",
        dest="builtin_tools",
        action="store_false",
        help="leave out the built-in tools (time, calculator, timers, reminders, memory, document search)",
    )


async def load_tools_for(args: argparse.Namespace, knowledge: KnowledgeService | None = None) -> ToolRegistry:
    """The registry the options and the config file describe; ``ConfigError`` for a bad config.

    ``knowledge`` is the store a server shares with its personas; without one
    the registry opens the data dir's when a tool first needs it.
    """
    config = load_config(args.config)
    sources = ToolSources.from_config(config, modules=args.tools, builtins=args.builtin_tools, knowledge=knowledge)
    return await load_tools(sources)


def describe(registry: ToolRegistry) -> dict[str, Any]:
    """Everything ``tools`` prints, as JSON-ready data."""
    return {
        "tools": [
            {
                "name": registered.spec.name,
                "source": registered.source,
                "behavior": registered.spec.behavior,
                "timeout_s": registered.spec.timeout_s or registry.default_timeout_s,
                "description": registered.spec.description,
                "parameters": registered.spec.parameters,
                "declaration": registered.declaration.model_dump(mode="json", exclude_none=True),
            }
            for registered in registry.tools()
        ],
        "problems": [{"source": problem.source, "message": problem.message} for problem in registry.problems],
    }


def print_text(listing: dict[str, Any]) -> None:
    tools = listing["tools"]
    print(f"{len(tools)} tool{'s' if len(tools) != 1 else ''}")
    for entry in tools:
        flags = "non-blocking, " if entry["behavior"] == "NON_BLOCKING" else ""
        print(f"\n{entry['name']}  [{entry['source']}; {flags}timeout {entry['timeout_s']:g} s]")
        summary = (entry["description"] or "(no description)").split("\n\n")[0]
        print("  " + summary.replace("\n", "\n  "))
        parameters = entry["parameters"].get("properties", {})
        required = set(entry["parameters"].get("required", []))
        for name, schema in parameters.items():
            mark = "" if name in required else "?"
            print(f"    {name}{mark}: {json.dumps(schema, ensure_ascii=False)}")
    if listing["problems"]:
        print(f"\n{len(listing['problems'])} skipped:", file=sys.stderr)
        for problem in listing["problems"]:
            print(f"  {problem['source']}: {problem['message']}", file=sys.stderr)


async def list_tools(args: argparse.Namespace) -> int:
    registry = await load_tools_for(args)
    try:
        listing = describe(registry)
    finally:
        await registry.aclose()
    if args.json:
        print(json.dumps(listing, indent=2, ensure_ascii=False))
    else:
        print_text(listing)
    return 1 if listing["problems"] else 0


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    try:
        return asyncio.run(list_tools(args))
    except ConfigError as exc:
        print(f"assistant: {exc}", file=sys.stderr)
        return 2
