"""Which event loop a server process runs on: uvloop where it is installed, asyncio's own otherwise.

The relay spends most of its CPU below Python: sockets, TLS and the event
loop's bookkeeping for every 20 ms chunk, both ways, for every session.
uvloop (libuv, with its TLS layer and transports in Cython) does that work
in C where asyncio's selector loop does it in Python, so ``assistant
serve`` takes it by default. The choice is a flag, as in uvicorn
(``--loop auto|asyncio|uvloop``): ``asyncio`` rules the loop out when
something misbehaves on it, and ``uvloop`` fails at start, saying so, where
it is not installed (on Windows it never is), rather than quietly running
on the slower loop.

What changed, measured in one run against the same upstream and core, is in
README's *Benchmarks* (``assistant bench relay`` runs the server on both).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from assistant.errors import AssistantError

LoopChoice = Literal["auto", "asyncio", "uvloop"]
LOOP_CHOICES: tuple[LoopChoice, ...] = ("auto", "asyncio", "uvloop")

T = TypeVar("T")


class LoopUnavailable(AssistantError):
    """``--loop uvloop`` was asked for where uvloop cannot be imported."""


def loop_factory(choice: LoopChoice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory ``asyncio.Runner`` builds the loop with; None for asyncio's own."""
    if choice == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            raise LoopUnavailable(
                "--loop uvloop needs uvloop, which is not installed here (pip install uvloop; "
                "it has no Windows build): leave out --loop to run on asyncio's loop"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], choice: LoopChoice) -> T:
    """Run ``main`` to its end on the loop ``choice`` names, as ``asyncio.run`` does."""
    try:
        factory = loop_factory(choice)
    except LoopUnavailable:
        main.close()  # never awaited: no "coroutine was never awaited" warning on top of the error
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """What the running loop is, for the start-up log: "uvloop" or "asyncio"."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
