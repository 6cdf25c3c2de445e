"""``assistant serve``: run the Live server with the chosen backend."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from assistant.backends import BackendUnavailable, add_backend_arguments, create_backend, resolve_backend_name
from assistant.config import add_config_argument
from assistant.knowledge.service import KnowledgeService
from assistant.knowledge.store import KnowledgeError
from assistant.logs import configure_logging
from assistant.paths import data_dir
from assistant.personas.profiles import PersonaProfiles
from assistant.server import LiveServer, ServerConfig
from assistant.server.app import DEFAULT_MAX_MESSAGE_BYTES
from assistant.session import (
    Backend,
    MemoryResumptionStore,
    NoServerTools,
    ResumptionStore,
    ServerTools,
    SqliteResumptionStore,
    UnknownProfile,
)

logger = logging.getLogger("assistant.serve")

DEFAULT_DRAIN_SECONDS = 5.0


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
        "--drain-seconds",
        type=float,
        default=DEFAULT_DRAIN_SECONDS,
        metavar="N",
        help="on SIGTERM or Ctrl-C, refuse new sessions and give each client goAway, N seconds to finish its "
        "turn and a resumption handle before closing; a second signal stops at once (default %(default)s)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="default %(default)s"
    )


def build_store(args: argparse.Namespace) -> ResumptionStore:
    if args.resumption_store == "memory":
        return MemoryResumptionStore()
    return SqliteResumptionStore(args.resumption_db or data_dir() / "sessions.sqlite3")


def add_server_tool_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config``, the persona and knowledge store options, and (with the tools extra) ``--tools``
    and ``--no-builtin-tools``."""
    add_config_argument(parser)
    add_persona_arguments(parser)
    try:
        from assistant.cli.tools import add_tool_arguments
    except ModuleNotFoundError:
        parser.set_defaults(tools=[], builtin_tools=False)
        return
    add_tool_arguments(parser)


def add_persona_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("personas and knowledge")
    group.add_argument(
        "--persona",
        default=os.environ.get("ASSISTANT_PERSONA"),
        metavar="NAME",
        help="persona for conversations that choose none (see `assistant personas`); a connection may choose "
        "another with ?persona=NAME, or none (default $ASSISTANT_PERSONA, else the plain assistant)",
    )
    group.add_argument(
        "--qdrant-url",
        default=os.environ.get("ASSISTANT_QDRANT_URL"),
        help="a Qdrant server for the knowledge store and memory instead of the data dir's embedded one, so "
        "`assistant knowledge` can change it while the server runs (default $ASSISTANT_QDRANT_URL)",
    )
    group.add_argument("--qdrant-api-key", default=os.environ.get("QDRANT_API_KEY"), help="default $QDRANT_API_KEY")


@contextlib.asynccontextmanager
async def personas_and_knowledge(args: argparse.Namespace) -> AsyncIterator[tuple[PersonaProfiles, KnowledgeService]]:
    """The knowledge store this process shares, opened, and the personas, the default one ready.

    ``UnknownProfile`` for a ``--persona`` that does not exist or is
    invalid; ``KnowledgeError`` when the default persona needs a store that
    cannot be opened or a corpus that cannot be indexed.
    """
    knowledge = KnowledgeService(url=args.qdrant_url, api_key=args.qdrant_api_key)
    try:
        profiles = PersonaProfiles(knowledge, args.persona)
        await profiles.start()
        yield profiles, knowledge
    finally:
        await knowledge.aclose()


async def build_tools(args: argparse.Namespace, knowledge: KnowledgeService | None = None) -> ServerTools:
    """Server-side tools offered to every session: built-ins, plugins, modules, MCP servers.

    A plugin that fails is reported and skipped; a config file that is
    wrong stops the server (``ConfigError``), since the user asked for it.
    Memory and ``search_knowledge`` use ``knowledge`` (see ``load_tools_for``).
    """
    try:
        from assistant.cli.tools import load_tools_for
    except ModuleNotFoundError as exc:
        logger.warning("no server-side tools: %s is missing; install live-assistant[tools]", exc.name)
        return NoServerTools()
    registry = await load_tools_for(args, knowledge)
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
    config = server_config(args)
    config.ssl_context()  # a half-given TLS setup fails before anything loads
    name = resolve_backend_name(args.backend)
    backend = create_backend(name, args)
    async with personas_and_knowledge(args) as (profiles, knowledge):
        tools = await build_tools(args, knowledge)
        try:
            await serve_with(args, config, name, backend, tools, profiles)
        finally:
            await tools.aclose()


async def serve_with(
    args: argparse.Namespace,
    config: ServerConfig,
    name: str,
    backend: Backend,
    tools: ServerTools,
    profiles: PersonaProfiles,
) -> None:
    server = LiveServer(
        config, backend, store=build_store(args), tools=tools, profiles=profiles, persona_catalog=profiles.catalog
    )
    await server.start()
    http = "https" if server.scheme == "wss" else "http"
    persona = f", persona {profiles.default}" if profiles.default else ""
    print(f"assistant: {name} backend ready, {len(tools.declarations())} server tools{persona}", file=sys.stderr)
    print(f"  Live endpoint  {server.live_url}", file=sys.stderr)
    print(f"  browser client {http}://{args.host}:{server.port}/", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        stop.clear()
        await drain_unless_stopped(server, args.drain_seconds, stop)
    finally:
        logger.info("shutting down")
        await server.stop()


async def drain_unless_stopped(server: LiveServer, seconds: float, stop: asyncio.Event) -> None:
    """Drain the server (``LiveServer.drain``), cut short when ``stop`` is set again (a second signal)."""
    drain = asyncio.create_task(server.drain(seconds), name="drain")
    second_signal = asyncio.create_task(stop.wait(), name="second-signal")
    await asyncio.wait([drain, second_signal], return_when=asyncio.FIRST_COMPLETED)
    if second_signal.done():
        logger.warning("second signal: stopping without waiting for sessions to finish")
    for task in (drain, second_signal):
        task.cancel()
    drained, _ = await asyncio.gather(drain, second_signal, return_exceptions=True)
    if isinstance(drained, Exception):
        logger.error("draining failed; closing every session now", exc_info=drained)


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    try:
        asyncio.run(serve(args))
    except (BackendUnavailable, UnknownProfile, KnowledgeError) as exc:
        print(f"assistant: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"assistant: cannot serve: {exc}", file=sys.stderr)
        return 2
    return 0
