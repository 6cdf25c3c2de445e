"""``assistant serve``: run the Live server with the chosen backend."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from assistant.backends import BackendUnavailable, add_backend_arguments, create_backend, resolve_backend_name
from assistant.config import add_config_argument
from assistant.logs import configure_logging
from assistant.paths import data_dir
from assistant.server import LiveServer, ServerConfig
from assistant.server.app import DEFAULT_MAX_MESSAGE_BYTES
from assistant.session import (
    Backend,
    MemoryResumptionStore,
    NoServerTools,
    ResumptionStore,
    ServerTools,
    SqliteResumptionStore,
)

logger = logging.getLogger("assistant.serve")


def default_static_dir() -> Path:
    """The browser client shipped in the ``client`` package."""
    import client

    return Path(client.__file__).parent / "web"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the Live protocol and the browser client",
        description="Serve the Gemini Live protocol over websockets, and the browser client at /.",
    )
    add_serve_arguments(parser)
    add_server_tool_arguments(parser)
    add_backend_arguments(parser)
    parser.set_defaults(handler=run)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default %(default)s)")
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate; serve wss:// and https://")
    parser.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("ASSISTANT_API_KEY"),
        help="access key clients must send (x-goog-api-key header or ?key=); default $ASSISTANT_API_KEY",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="browser origin allowed besides the same origin and localhost (repeatable; * for any)",
    )
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest client message; bigger ones close with 1009 (default %(default)s)",
    )
    parser.add_argument(
        "--backend",
        choices=["auto", "gemini", "local"],
        default="auto",
        help="auto: gemini when GEMINI_API_KEY or GOOGLE_API_KEY is set, else local (default)",
    )
    parser.add_argument(
        "--resumption-store",
        choices=["sqlite", "memory"],
        default="sqlite",
        help="where resumption handles live: sqlite survives restarts (default), memory does not",
    )
    parser.add_argument("--resumption-db", type=Path, help="SQLite file for handles (default: in the data dir)")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="default %(default)s"
    )


def build_store(args: argparse.Namespace) -> ResumptionStore:
    if args.resumption_store == "memory":
        return MemoryResumptionStore()
    return SqliteResumptionStore(args.resumption_db or data_dir() / "sessions.sqlite3")


def add_server_tool_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tools``, ``--no-builtin-tools`` and ``--config``, when the tools extra is installed."""
    add_config_argument(parser)
    try:
        from assistant.cli.tools import add_tool_arguments
    except ModuleNotFoundError:
        parser.set_defaults(tools=[], builtin_tools=False)
        return
    add_tool_arguments(parser)


async def build_tools(args: argparse.Namespace) -> ServerTools:
    """Server-side tools offered to every session: built-ins, plugins, modules, MCP servers.

    A plugin that fails is reported and skipped; a config file that is
    wrong stops the server (``ConfigError``), since the user asked for it.
    """
    try:
        from assistant.cli.tools import load_tools_for
    except ModuleNotFoundError as exc:
        logger.warning("no server-side tools: %s is missing; install live-assistant[tools]", exc.name)
        return NoServerTools()
    registry = await load_tools_for(args)
    for problem in registry.problems:
        print(f"assistant: skipped {problem.source}: {problem.message}", file=sys.stderr)
    return registry


def server_config(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=args.host,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        api_key=args.api_key or None,
        allowed_origins=args.allow_origin,
        max_message_bytes=args.max_message_bytes,
        static_dir=default_static_dir(),
    )


async def serve(args: argparse.Namespace) -> None:
    name = resolve_backend_name(args.backend)
    backend = create_backend(name, args)
    tools = await build_tools(args)
    try:
        await serve_with(args, name, backend, tools)
    finally:
        await tools.aclose()


async def serve_with(args: argparse.Namespace, name: str, backend: Backend, tools: ServerTools) -> None:
    server = LiveServer(server_config(args), backend, store=build_store(args), tools=tools)
    await server.start()
    http = "https" if server.scheme == "wss" else "http"
    print(f"assistant: {name} backend ready, {len(tools.declarations())} server tools", file=sys.stderr)
    print(f"  Live endpoint  {server.live_url}", file=sys.stderr)
    print(f"  browser client {http}://{args.host}:{server.port}/", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        logger.info("shutting down")
        await server.stop()


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    try:
        asyncio.run(serve(args))
    except BackendUnavailable as exc:
        print(f"assistant: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"assistant: cannot serve: {exc}", file=sys.stderr)
        return 2
    return 0
