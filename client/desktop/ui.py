"""What the person at the terminal sees: transcripts, levels, who speaks, tools, latency.

``TalkView`` holds the state and takes the app's events; two renderers show
it. ``RichScreen`` (a terminal) redraws a live panel ten times a second and
edits a line of typed text; ``PlainLog`` (a pipe, a log file, a test) prints
one line per finished utterance, tool call and turn, so a transcript can be
read back with grep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
import time
import tty
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

MAX_LINES = 200
METER_WIDTH = 24
METER_FLOOR_DBFS = -70.0

OnText = Callable[[str], Coroutine[Any, Any, None]]


@dataclass
class Line:
    """One utterance or event in the transcript."""

    who: str  # "you", "assistant", "tool", "turn", "notice"
    text: str
    open: bool = True


@dataclass
class TalkView:
    """The state of the screen; the app calls the event methods, renderers read the fields."""

    title: str = "assistant talk"
    status: str = "starting"
    busy: bool = True  # a spinner: loading models, connecting
    mic_dbfs: float = METER_FLOOR_DBFS
    user_speaking: bool = False
    assistant_speaking: bool = False
    echo: str = ""
    wake: str = ""  # with a wake word: whether the microphone reaches the server
    awake: bool = False
    lines: list[Line] = field(default_factory=list)
    typed: str = ""
    turns: int = 0
    _sending: set[asyncio.Task[None]] = field(default_factory=set)

    # -- events --------------------------------------------------------------

    def set_status(self, text: str, busy: bool = False) -> None:
        self.status, self.busy = text, busy

    def levels(self, mic_dbfs: float, user_speaking: bool, assistant_speaking: bool) -> None:
        self.mic_dbfs, self.user_speaking, self.assistant_speaking = mic_dbfs, user_speaking, assistant_speaking

    def wake_state(self, text: str, awake: bool) -> None:
        self.wake, self.awake = text, awake

    def _open_line(self, who: str) -> Line:
        for line in reversed(self.lines):
            if line.who == who and line.open:
                return line
            if line.who in {"you", "assistant"} and line.open:
                break
        line = Line(who, "")
        self._add(line)
        return line

    def _add(self, line: Line) -> None:
        self.lines.append(line)
        del self.lines[:-MAX_LINES]

    def _close(self, line: Line) -> None:
        line.open = False
        line.text = " ".join(line.text.split())
        self.finished(line)

    def user_said(self, text: str, finished: bool = False) -> None:
        line = self._open_line("you")
        line.text += text
        if finished:
            self._close(line)

    def user_typed(self, text: str) -> None:
        self._close_open("you")
        line = Line("you", f"{text} (typed)")
        self._add(line)
        self._close(line)

    def assistant_said(self, text: str) -> None:
        self._close_open("you")
        self._open_line("assistant").text += text

    def _close_open(self, who: str) -> None:
        for line in self.lines:
            if line.who == who and line.open:
                self._close(line)

    def tool_call(self, text: str) -> None:
        line = Line("tool", text, open=False)
        self._add(line)
        self.finished(line)

    def notice(self, text: str) -> None:
        line = Line("notice", text, open=False)
        self._add(line)
        self.finished(line)

    def turn_over(self, interrupted: bool, latency_ms: float | None) -> None:
        self._close_open("you")
        self._close_open("assistant")
        self.turns += 1
        latency = f"{latency_ms:.0f} ms to first reply" if latency_ms is not None else "no reply timing"
        line = Line("turn", f"turn {self.turns} {'interrupted' if interrupted else 'done'} · {latency}", open=False)
        self._add(line)
        self.finished(line)

    def finished(self, line: Line) -> None:
        """A line is complete (renderers that print lines override this)."""

    async def run(self, on_text: OnText, stop: asyncio.Event) -> None:
        """Show the view until ``stop`` is set, sending typed lines to ``on_text``."""
        await stop.wait()

    def submit(self, on_text: OnText, text: str) -> None:
        """Send a typed line without blocking the keyboard handler (a reference keeps the task alive)."""
        task = asyncio.get_running_loop().create_task(on_text(text))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)


def meter(dbfs: float, width: int = METER_WIDTH) -> str:
    """A text level meter from ``METER_FLOOR_DBFS`` to 0 dBFS."""
    fraction = min(1.0, max(0.0, (dbfs - METER_FLOOR_DBFS) / -METER_FLOOR_DBFS))
    filled = round(fraction * width)
    return "█" * filled + "·" * (width - filled)


class PlainLog(TalkView):
    """One printed line per finished utterance, tool call, turn and notice; typed lines from stdin."""

    def __init__(self, out: TextIO | None = None, **fields: object) -> None:
        super().__init__(**fields)  # type: ignore[arg-type]
        self._out = out
        self._last_status = ""

    def set_status(self, text: str, busy: bool = False) -> None:
        super().set_status(text, busy)
        if text != self._last_status:
            self._last_status = text
            print(f"[{text}]", file=self.out, flush=True)

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout

    def finished(self, line: Line) -> None:
        label = {"tool": "tool", "turn": "--", "notice": "!"}.get(line.who, f"{line.who}:")
        print(f"{label} {line.text}", file=self.out, flush=True)

    async def run(self, on_text: OnText, stop: asyncio.Event) -> None:
        """Lines arriving on stdin (a terminal or a pipe) are sent as text; end of input stops reading."""
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, OSError, ValueError):  # no usable stdin (a test runner's)
            await stop.wait()
            return
        loop = asyncio.get_running_loop()
        pending = bytearray()

        def readable() -> None:
            data = os.read(fd, 4096)
            if not data:
                loop.remove_reader(fd)
                return
            pending.extend(data)
            while b"\n" in pending:
                line, _, rest = bytes(pending).partition(b"\n")
                pending[:] = rest
                text = line.decode(errors="replace").strip()
                if text:
                    self.submit(on_text, text)

        try:
            loop.add_reader(fd, readable)
        except (OSError, ValueError, PermissionError):  # a regular file cannot be watched
            await stop.wait()
            return
        try:
            await stop.wait()
        finally:
            loop.remove_reader(fd)


STYLES = {"you": "bold cyan", "assistant": "bold green", "tool": "yellow", "turn": "dim", "notice": "bold red"}


class RichScreen(TalkView):
    """A live terminal panel, with a line editor for typed text (Enter sends, Ctrl-D or /quit leaves)."""

    def __init__(self, console: Console | None = None, **fields: object) -> None:
        super().__init__(**fields)  # type: ignore[arg-type]
        self.console = console or Console()
        self._spinner = Spinner("dots")
        self._started = time.monotonic()

    def render(self) -> RenderableType:
        header = Table.grid(expand=True)
        header.add_column()
        header.add_column(justify="right")
        status: RenderableType = Text(self.status)
        if self.busy:
            self._spinner.update(text=Text(f"{self.status}  {time.monotonic() - self._started:.0f} s"))
            status = self._spinner
        header.add_row(status, Text(self.echo, style="dim"))
        levels = Text.assemble(
            ("mic ", "dim"),
            (meter(self.mic_dbfs), "cyan"),
            (f" {self.mic_dbfs:4.0f} dBFS   ", "dim"),
            ("● you speaking" if self.user_speaking else "○ you", "bold cyan" if self.user_speaking else "dim"),
            ("   ", ""),
            (
                "● assistant speaking" if self.assistant_speaking else "○ assistant",
                "bold green" if self.assistant_speaking else "dim",
            ),
        )
        if self.wake:
            levels.append(f"   {'◉' if self.awake else '◌'} {self.wake}", "bold magenta" if self.awake else "dim")
        height = max(5, self.console.size.height - 9)
        transcript = Text()
        for line in self.lines[-height:]:
            if line.who in {"you", "assistant"}:
                transcript.append(f"{line.who}: ", style=STYLES[line.who])
                transcript.append(line.text.strip() + (" …" if line.open else "") + "\n")
            else:
                prefix = {"tool": "⚙ ", "turn": "  ", "notice": "! "}[line.who]
                transcript.append(prefix + line.text + "\n", style=STYLES[line.who])
        prompt = Text.assemble(("> ", "bold"), self.typed, ("▏", "blink"))
        hint = Text("Enter sends text · Ctrl-D or /quit leaves", style="dim")
        return Panel(Group(header, levels, Text(""), transcript, prompt, hint), title=self.title, border_style="blue")

    async def run(self, on_text: OnText, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)

        escape = False

        def on_key() -> None:
            nonlocal escape
            for char in os.read(fd, 1024).decode(errors="ignore"):
                if escape:  # skip the rest of an arrow key's or function key's sequence
                    escape = not (char.isalpha() or char == "~")
                elif char == "\x1b":
                    escape = True
                elif char in "\r\n":
                    text, self.typed = self.typed.strip(), ""
                    if text == "/quit":
                        stop.set()
                    elif text:
                        self.submit(on_text, text)
                elif char in "\x7f\b":
                    self.typed = self.typed[:-1]
                elif char == "\x04" and not self.typed:
                    stop.set()
                elif char.isprintable():
                    self.typed += char

        loop.add_reader(fd, on_key)
        try:
            with Live(self.render(), console=self.console, refresh_per_second=10, screen=False) as live:
                while not stop.is_set():
                    live.update(self.render())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.1)
                live.update(self.render())
        finally:
            loop.remove_reader(fd)
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
