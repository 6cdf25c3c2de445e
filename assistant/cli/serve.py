"""``assistant serve``: run the Live server with the chosen backend."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from assistant.backends import (
    BackendUnavailable,
    add_backend_arguments,
    create_backend,
    resolve_backend_name,
    settings_from_args,
)
from assistant.config import add_config_argument, load_config
from assistant.knowledge.service import KnowledgeService
from assistant.knowledge.store import KnowledgeError
from assistant.logs import LOG_FORMATS, configure_logging
from assistant.paths import data_dir
from assistant.personas.profiles import PersonaProfiles
from assistant.server import LiveServer, ServerConfig
from assistant.server.access import is_loopback
from assistant.server.app import DEFAULT_MAX_MESSAGE_BYTES
from assistant.server.eventloop import LOOP_CHOICES, LoopUnavailable, loop_name
from assistant.server.eventloop import run as run_on_loop
from assistant.server.heap import settle_heap
from assistant.session import (
    Backend,
    MemoryResumptionStore,
    NoServerTools,
    ServerTools,
    SessionSettings,
    SqliteResumptionStore,
    UnknownProfile,
)
from assistant.session.limits import DEFAULT_HISTORY_BYTES, DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_QUEUE_BYTES
from assistant.session.stores import ConversationStore

logger = logging.getLogger("assistant.serve")
REDIS_SCHEMES = ("redis", "rediss", "unix")

DEFAULT_DRAIN_SECONDS = 5.0


def default_static_dir() -> Path:
    """The browser client shipped in the ``client`` package."""
    import client

    return Path(client.__file__).parent / "web"


def positive_int(text: str) -> int:
    """An argparse type for sizes and counts that must be at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the Live protocol and the browser client",
        description="Serve the Gemini Live protocol over websockets, and the browser client at /.",
        epilog=SAFETY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_serve_arguments(parser)
    add_server_tool_arguments(parser)
    add_backend_arguments(parser)
    parser.set_defaults(handler=run)


SAFETY_EPILOG = """\
running it safely:
  On 127.0.0.1 (the default) only this machine can connect, and no key is needed.
  With --host 0.0.0.0 (phones on the LAN) the server makes an access key unless you give one,
  and prints the page's URL with ?key=; the page trades it for a cookie and connects with
  short-lived ephemeral tokens. Requests must name an allowed host (loopback, the listen
  address, the certificate's names, the address the client reached, or --allow-host), which
  stops DNS rebinding. Browsers need TLS (--tls-cert/--tls-key) for the microphone anywhere
  but localhost. Behind a reverse proxy that terminates TLS, keep --host 127.0.0.1, give
  --api-key (through the proxy every client looks local) and add the public name with
  --allow-host. --no-auth turns the key off: anyone who reaches the port
  spends your backend and reads the assistant's memory and documents through its tools.
  See "Security and threat model" in README.md.
"""


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default %(default)s)")
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate; serve wss:// and https://")
    parser.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("ASSISTANT_API_KEY"),
        help="access key clients must send (x-goog-api-key header or ?key=); default $ASSISTANT_API_KEY, else "
        "one made at start when listening beyond loopback",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="no access key even beyond loopback: anyone who reaches the port may use the assistant (unsafe)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name to answer besides loopback, the listen address, the TLS certificate's names and the "
        "address a client reached (repeatable; * for any, which gives up the DNS-rebinding check)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="browser origin allowed besides the server's own (repeatable; * for any)",
    )
    parser.add_argument(
        "--max-sessions",
        type=positive_int,
        metavar="N",
        help="live sessions at most; more are closed with 1013 (try again later) (default: no limit)",
    )
    parser.add_argument(
        "--max-sessions-per-key",
        type=positive_int,
        metavar="N",
        help="live sessions at most per access key or the key that minted a token (per client address without "
        "a key), counted across the processes sharing --store; more are closed with 1013 (default: no limit)",
    )
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest client message; bigger ones close with 1009 (default %(default)s)",
    )
    parser.add_argument(
        "--max-queue-bytes",
        type=positive_int,
        default=DEFAULT_QUEUE_BYTES,
        metavar="BYTES",
        help="each session's queue in each direction; past it audio and frames are dropped and other messages "
        "wait, pushing back on the sender (default %(default)s: 5 s of audio and a few frames)",
    )
    parser.add_argument(
        "--max-history-bytes",
        type=positive_int,
        default=DEFAULT_HISTORY_BYTES,
        metavar="BYTES",
        help="text and images each conversation keeps for resumption; the oldest turns go first "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--max-image-pixels",
        type=positive_int,
        default=DEFAULT_MAX_IMAGE_PIXELS,
        metavar="PIXELS",
        help="largest client image (width x height, read from its header before decoding); bigger ones close "
        "with 1009 (default %(default)s, 4K)",
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
        "--store",
        default=os.environ.get("ASSISTANT_STORE"),
        metavar="URL",
        help="a Redis server that several server processes share (redis://host:port/db): resumption handles, "
        "late tool results, session counts; overrides --resumption-store (default $ASSISTANT_STORE)",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=DEFAULT_DRAIN_SECONDS,
        metavar="N",
        help="on SIGTERM or Ctrl-C, refuse new sessions and give each client goAway, N seconds to finish its "
        "turn and a resumption handle before closing; a second signal stops at once (default %(default)s)",
    )
    parser.add_argument(
        "--loop",
        choices=LOOP_CHOICES,
        default="auto",
        help="the event loop: uvloop (sockets, TLS and scheduling in C; the relay's CPU is mostly there), "
        "asyncio's own, or auto: uvloop where it is installed (default)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="default %(default)s"
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=LOG_FORMATS,
        help="text lines, or one JSON object a line for log collectors (default %(default)s)",
    )


def access_key(args: argparse.Namespace) -> str | None:
    """The key clients must send: the one given, else a new one when the server is reachable beyond loopback.

    Like Jupyter: reachable from other machines means a key, unless the
    operator says ``--no-auth`` (and is warned).
    """
    if args.no_auth:
        if args.api_key:
            raise ValueError("--no-auth and --api-key contradict each other; give one")
        if not is_loopback(args.host):
            print(
                f"assistant: WARNING: --no-auth on {args.host}: anyone who can reach port {args.port} can talk to "
                "the assistant, spend its backend and read its memory and documents through its tools",
                file=sys.stderr,
            )
        return None
    if args.api_key:
        return str(args.api_key)
    if is_loopback(args.host):
        return None
    return secrets.token_urlsafe(24)


def check_store(args: argparse.Namespace) -> None:
    """A ``--store`` that is not a Redis URL, or without the redis extra, fails before anything loads."""
    if not args.store:
        return
    if urlsplit(args.store).scheme not in REDIS_SCHEMES:
        raise ValueError(f"--store takes a Redis URL ({', '.join(s + '://' for s in REDIS_SCHEMES)})")
    if importlib.util.find_spec("redis") is None:
        raise ValueError("--store needs the redis package; install live-assistant[redis]")


def build_store(args: argparse.Namespace) -> ConversationStore:
    """The Redis store of ``--store``, else handles in SQLite or memory with late results and counts in memory."""
    check_store(args)
    if args.store:
        from assistant.session.redis_store import RedisConversationStore

        return RedisConversationStore(args.store)
    if args.resumption_store == "memory":
        return ConversationStore(MemoryResumptionStore())
    return ConversationStore(SqliteResumptionStore(args.resumption_db or data_dir() / "sessions.sqlite3"))


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
        help="persona for conversations that choose none (see `assistant personas`), or the path of a persona "
        "file to publish and use; a connection may choose another published persona by name with ?persona=NAME, "
        "or none (default $ASSISTANT_PERSONA, else the plain assistant)",
    )
    group.add_argument(
        "--persona-dir",
        dest="persona_dirs",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="publish the NAME.toml persona files of DIR (repeatable; also [personas] dirs in the config file). "
        "Clients choose personas by name among the shipped, installed, your config folder's and these; "
        "a name is never taken as a path",
    )
    group.add_argument(
        "--qdrant-url",
        default=os.environ.get("ASSISTANT_QDRANT_URL"),
        help="a Qdrant server for the knowledge store and memory instead of the data dir's embedded one, so "
        "`assistant knowledge` can change it while the server runs (default $ASSISTANT_QDRANT_URL)",
    )
    group.add_argument("--qdrant-api-key", default=os.environ.get("QDRANT_API_KEY"), help="default $QDRANT_API_KEY")


def published_personas(args: argparse.Namespace) -> tuple[str | None, list[Path]]:
    """The default persona's name and the persona folders (or files) the operator publishes.

    A ``--persona`` that is a path (the operator's own input, unlike a
    client's ``?persona=``) publishes that one file and makes it the
    default. ``ConfigError`` for a bad config file, ``UnknownProfile`` for a
    ``--persona-dir`` that is not a folder or a ``--persona`` file that is not there.
    """
    folders = [*load_config(args.config).personas.dirs, *args.persona_dirs]
    for folder in folders:
        if not folder.is_dir():
            raise UnknownProfile(f"persona folder {folder} does not exist (--persona-dir or [personas] dirs)")
    default = args.persona
    if default and (default.endswith(".toml") or os.sep in default):
        file = Path(default).expanduser()
        if not file.is_file():
            raise UnknownProfile(f"persona file {file} does not exist")
        folders.append(file)
        default = file.stem
    return default, folders


@contextlib.asynccontextmanager
async def personas_and_knowledge(args: argparse.Namespace) -> AsyncIterator[tuple[PersonaProfiles, KnowledgeService]]:
    """The knowledge store this process shares, opened, and the personas, the default one ready.

    ``UnknownProfile`` for a ``--persona`` that does not exist or is
    invalid (see ``published_personas``); ``KnowledgeError`` when the default persona needs a store that
    cannot be opened or a corpus that cannot be indexed.
    """
    default, folders = published_personas(args)
    knowledge = KnowledgeService(url=args.qdrant_url, api_key=args.qdrant_api_key)
    try:
        profiles = PersonaProfiles(knowledge, default, folders=folders)
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
        api_key=access_key(args),
        allowed_origins=args.allow_origin,
        allowed_hosts=args.allow_host,
        max_sessions=args.max_sessions,
        max_sessions_per_key=args.max_sessions_per_key,
        max_message_bytes=args.max_message_bytes,
        static_dir=default_static_dir(),
        session=SessionSettings(
            inbound_queue_bytes=args.max_queue_bytes,
            outbound_queue_bytes=args.max_queue_bytes,
            history_bytes=args.max_history_bytes,
            max_image_pixels=args.max_image_pixels,
        ),
    )


async def serve(args: argparse.Namespace) -> None:
    config = server_config(args)
    config.ssl_context()  # a half-given TLS setup fails before anything loads
    check_store(args)
    name = resolve_backend_name(args.backend)
    backend = create_backend(name, settings_from_args(name, args))
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
    store = build_store(args)
    await store.start()
    server = LiveServer(
        config,
        backend,
        store=store.resumption,
        late_results=store.late_results,
        session_counts=store.session_counts,
        tools=tools,
        profiles=profiles,
        persona_catalog=profiles.catalog,
    )
    try:
        await server.start()
    except BaseException:
        await store.aclose()
        raise
    frozen = settle_heap()  # start-up is over: full collections no longer walk what it loaded
    logger.debug("start-up heap frozen: %d objects", frozen)
    http = "https" if server.scheme == "wss" else "http"
    persona = f", persona {profiles.default}" if profiles.default else ""
    print(
        f"assistant: {name} backend ready, {len(tools.declarations())} server tools{persona}, "
        f"{loop_name(asyncio.get_running_loop())} event loop",
        file=sys.stderr,
    )
    print(f"  Live endpoint  {server.live_url}", file=sys.stderr)
    print(f"  browser client {page_url(http, args.host, server.port, config.api_key)}", file=sys.stderr)
    lan = lan_address() if args.host in ("0.0.0.0", "::", "") else None
    if lan is not None:
        print(f"  on the LAN     {page_url(http, lan, server.port, config.api_key)}", file=sys.stderr)
    sys.stderr.flush()
    if config.api_key is not None and not args.api_key:
        print("  access key made for this run; give --api-key or $ASSISTANT_API_KEY to keep one", file=sys.stderr)
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
        await store.aclose()


def page_url(scheme: str, host: str, port: int, key: str | None) -> str:
    """The page's address as the operator should open it: with ``?key=`` when there is a key."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"{scheme}://{shown}:{port}/" + (f"?key={key}" if key else "")


def lan_address() -> str | None:
    """This machine's address on its default route (a UDP "connect" sends nothing), for the LAN URL."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never answered, only routed
        address = str(probe.getsockname()[0])
        return None if address.startswith("127.") else address
    return None


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
    configure_logging(args.log_level, args.log_format)
    try:
        run_on_loop(serve(args), args.loop)
    except (BackendUnavailable, UnknownProfile, KnowledgeError, LoopUnavailable) as exc:
        print(f"assistant: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"assistant: cannot serve: {exc}", file=sys.stderr)
        return 2
    return 0
