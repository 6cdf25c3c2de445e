"""``assistant talk``: a full-duplex conversation through the microphone and speakers.

By default the session runs in this process: the chosen backend is built and
a ``Session`` runs over an in-process pipe, so the app is a Live protocol
client exactly as it is over a socket. ``--connect URL`` makes it a plain
client of a running ``assistant serve`` (or any Live server) instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from assistant.backends import (
    BackendUnavailable,
    add_backend_arguments,
    create_backend,
    resolve_backend_name,
    settings_from_args,
)
from assistant.cli.serve import add_server_tool_arguments, build_tools, personas_and_knowledge
from assistant.knowledge.store import KnowledgeError
from assistant.logs import configure_logging
from assistant.session import Backend, MemoryResumptionStore, Session, UnknownProfile
from assistant.session.pipe import PipeEnd, pipe
from audio.aec import EchoMode, EchoUnavailable
from audio.devices import AudioDeviceError, list_devices, open_portaudio
from audio.pcm import WavFormatError
from audio.wakeword import MicroWakeWordDetector, WakeWordUnavailable
from client.desktop.app import DEFAULT_MODEL, NoReply, TalkApp, TalkSettings
from client.desktop.frames import FrameFeed, FramesUnavailable, frame_spec
from client.desktop.live import BackendUnreachable, LiveClient, LiveClosed, PipeConnection, connect_websocket
from client.desktop.media import AudioChoice, AudioEnds
from client.desktop.tools import shown_tools
from client.desktop.ui import PlainLog, RichScreen, TalkView
from client.desktop.wake import COMMAND_WINDOW_S, FOLLOW_UP_S, WakeGate

logger = logging.getLogger("assistant.talk")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "talk",
        help="talk with the assistant through the microphone and speakers",
        description=(
            "Talk with the assistant: microphone in, speaker out, with echo cancellation so it can "
            "be interrupted through laptop speakers. Type a line and press Enter to send text."
        ),
    )
    add_talk_arguments(parser)
    add_server_tool_arguments(parser)
    add_backend_arguments(parser)
    parser.set_defaults(handler=run)


def add_talk_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("session")
    where.add_argument(
        "--backend",
        choices=["auto", "gemini", "local"],
        default="auto",
        help="backend for the in-process session; "
        "auto: gemini when GEMINI_API_KEY or GOOGLE_API_KEY is set, else local (default)",
    )
    where.add_argument("--connect", metavar="URL", help="talk to a running Live server (ws:// or wss://) instead")
    where.add_argument(
        "--api-key",
        default=os.environ.get("ASSISTANT_API_KEY"),
        help="access key for --connect (default $ASSISTANT_API_KEY)",
    )
    where.add_argument("--model", default=DEFAULT_MODEL, help="model named in the setup (default %(default)s)")
    where.add_argument(
        "--prebuilt-voice", metavar="NAME", help="prebuilt voice named in the setup's speechConfig"
    )
    where.add_argument("--instructions", help="system instruction for the conversation")

    sound = parser.add_argument_group("sound")
    sound.add_argument("--list-devices", action="store_true", help="list microphones and speakers, then exit")
    sound.add_argument("--input-device", metavar="N|NAME", help="microphone: index or part of its name")
    sound.add_argument("--output-device", metavar="N|NAME", help="speaker: index or part of its name")
    sound.add_argument(
        "--input", type=Path, metavar="WAV", help="read the question from a WAV file, not the microphone"
    )
    sound.add_argument("--output", type=Path, metavar="WAV", help="write what the speaker would play to a WAV file")
    sound.add_argument(
        "--echo",
        choices=[mode.value for mode in EchoMode],
        default=EchoMode.AUTO.value,
        help="cancel: echo cancellation (speexdsp); gate: mute the microphone while the assistant talks; "
        "off: nothing (headphones); auto: cancel when available, else gate (default)",
    )
    sound.add_argument(
        "--wake-word",
        metavar="NAME",
        help="hands-free: send the microphone only after this word is heard on this machine (okay_nabu, "
        f"hey_jarvis, alexa, hey_mycroft), until {COMMAND_WINDOW_S:.0f} s pass without a request or "
        f"{FOLLOW_UP_S:.0f} s pass quiet after a reply",
    )

    vision = parser.add_argument_group("vision")
    vision.add_argument("--camera", type=int, metavar="N", help="send frames from camera N (about one a second)")
    vision.add_argument("--screen", action="store_true", help="send frames of the screen")

    screen = parser.add_argument_group("terminal")
    screen.add_argument(
        "--ui", choices=["auto", "rich", "plain"], default="auto", help="rich panel on a terminal, else plain lines"
    )
    screen.add_argument(
        "--until",
        choices=["auto", "reply", "quit"],
        default="auto",
        help="reply: leave once the --input file is answered; quit: stay until Ctrl-D or /quit; "
        "auto: reply when --input is given and stdin is not a terminal",
    )
    screen.add_argument("--reply-timeout", type=float, default=60.0, help="seconds to wait for an answer to --input")
    screen.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"], help="default %(default)s"
    )


def _print_devices() -> int:
    pa = open_portaudio()
    try:
        devices = list_devices(pa)
    finally:
        pa.terminate()
    if not devices:
        print("no sound devices found", file=sys.stderr)
        return 1
    for device in devices:
        print(device.describe())
    return 0


def _view(args: argparse.Namespace) -> TalkView:
    rich = args.ui == "rich" or (args.ui == "auto" and sys.stdin.isatty() and sys.stdout.isatty())
    return RichScreen() if rich else PlainLog()


def _settings(args: argparse.Namespace) -> TalkSettings:
    until = args.until
    if until == "auto":
        until = "reply" if args.input is not None and not sys.stdin.isatty() else "quit"
    return TalkSettings(
        model=args.model,
        voice=args.prebuilt_voice,
        instructions=args.instructions,
        until_reply=until == "reply" and args.input is not None,
        reply_timeout_s=args.reply_timeout,
    )


@contextlib.asynccontextmanager
async def in_process_client(backend: Backend, view: TalkView, args: argparse.Namespace) -> AsyncIterator[LiveClient]:
    """Start ``backend`` (showing progress) and run a ``Session`` for it over an in-process pipe."""

    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(backend.aclose)
        view.set_status(f"loading the {backend.name} backend", busy=True)
        with _status_from_logs(view, f"loading the {backend.name} backend"):
            await backend.start()
        with _status_from_logs(view, "preparing knowledge"):
            profiles, knowledge = await stack.enter_async_context(personas_and_knowledge(args))
        tools = shown_tools(await build_tools(args, knowledge), view)
        stack.push_async_callback(tools.aclose)
        server_end, client_end = pipe()
        session = Session(server_end, backend, store=MemoryResumptionStore(), tools=tools, profiles=profiles)
        running = asyncio.create_task(session.run(), name="talk-session")
        stack.push_async_callback(_end_session, client_end, running)
        yield LiveClient(PipeConnection(client_end))


async def _end_session(client_end: PipeEnd, running: asyncio.Task[None]) -> None:
    """Hang up, give the session a moment to close cleanly, then stop it."""
    with contextlib.suppress(Exception):
        await client_end.close(1000, "client left")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(running), 5.0)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


class _ViewStatus(logging.Handler):
    """Shows what a loading backend logs (which model, how far) as the view's status line."""

    def __init__(self, view: TalkView, prefix: str) -> None:
        super().__init__(logging.INFO)
        self.view = view
        self.prefix = prefix

    def emit(self, record: logging.LogRecord) -> None:
        self.view.set_status(f"{self.prefix}: {record.getMessage()}", busy=True)


@contextlib.contextmanager
def _status_from_logs(view: TalkView, prefix: str) -> Iterator[None]:
    """While a backend loads, its INFO lines become the view's status (and stay out of the log if it is quieter)."""
    handler = _ViewStatus(view, prefix)
    project = logging.getLogger("assistant")
    level, propagate = project.level, project.propagate
    project.addHandler(handler)
    if project.getEffectiveLevel() > logging.INFO:
        project.setLevel(logging.INFO)
        project.propagate = False
    try:
        yield
    finally:
        project.removeHandler(handler)
        project.setLevel(level)
        project.propagate = propagate


async def talk(args: argparse.Namespace, backend: Backend | None = None) -> None:
    """Run one conversation as ``args`` say; ``backend`` overrides the named one (tests inject theirs)."""
    settings = _settings(args)
    spec = frame_spec(args.camera, args.screen)
    frames = FrameFeed(spec) if spec else None
    wake = WakeGate(MicroWakeWordDetector(args.wake_word)) if args.wake_word else None
    audio = AudioEnds(
        AudioChoice(
            input_wav=args.input,
            output_wav=args.output,
            input_device=args.input_device,
            output_device=args.output_device,
            echo=EchoMode(args.echo),
        )
    )
    view = _view(args)
    try:
        if args.connect:
            view.set_status(f"connecting to {args.connect}", busy=True)
            client = LiveClient(await connect_websocket(with_persona(args.connect, args.persona), args.api_key))
            try:
                await _serve_signals(TalkApp(client, audio, view, settings, frames, wake))
            finally:
                with contextlib.suppress(LiveClosed, OSError):
                    await client.close()
        else:
            if backend is None:
                name = resolve_backend_name(args.backend)
                backend = create_backend(name, settings_from_args(name, args))
            async with in_process_client(backend, view, args) as client:
                await _serve_signals(TalkApp(client, audio, view, settings, frames, wake))
    finally:
        audio.close()


def with_persona(url: str, persona: str | None) -> str:
    """``url`` asking the server for ``persona`` (``?persona=``), as the browser client does."""
    if not persona:
        return url
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "persona"] + [("persona", persona)]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _serve_signals(app: TalkApp) -> None:
    """Run ``app``; Ctrl-C and SIGTERM end the conversation cleanly."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, app.stop.set)
    try:
        await app.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)


ACTIONABLE = (
    BackendUnavailable,
    UnknownProfile,
    KnowledgeError,
    BackendUnreachable,
    AudioDeviceError,
    EchoUnavailable,
    FramesUnavailable,
    WavFormatError,
    WakeWordUnavailable,
    FileNotFoundError,
    NoReply,
)


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    if args.list_devices:
        try:
            return _print_devices()
        except AudioDeviceError as exc:
            print(f"assistant talk: {exc}", file=sys.stderr)
            return 2
    try:
        asyncio.run(talk(args))
    except ACTIONABLE as exc:
        print(f"assistant talk: {exc}", file=sys.stderr)
        return 2
    except LiveClosed as exc:
        if exc.code == 1000:
            print(f"assistant talk: session ended: {exc.reason}", file=sys.stderr)
            return 0
        print(f"assistant talk: the session closed ({exc.code}): {exc.reason}", file=sys.stderr)
        return 1
    return 0
