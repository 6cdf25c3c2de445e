"""What the process touches on disk and runs, seen through one ``sys.addaudithook`` per test process.

Audit hooks cannot be removed, so the hook is installed once (on first use)
and records only while a ``recording()`` block is open. It sees every
thread, so work a session hands to ``asyncio.to_thread`` is seen too, and
it sees an ``open`` before the system call, so a failed attempt at a file
that does not exist counts as well.

Recorded: ``open`` (``open()``, ``io.open``, ``os.open``), ``os.listdir`` and
``os.scandir`` (folder listings: ``glob``, ``Path.iterdir``) and
``subprocess.Popen`` (the argv of every program started).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

_OPEN = "open"
_LISTINGS = frozenset({"os.listdir", "os.scandir"})
_SPAWN = "subprocess.Popen"
_EVENTS = frozenset({_OPEN, _SPAWN, *_LISTINGS})


@dataclass
class Recording:
    """What happened while a ``recording()`` block was open."""

    opened: list[str] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)
    spawned: list[list[str]] = field(default_factory=list)


_lock = threading.Lock()
_installed = False
_current: Recording | None = None


def _path(value: object) -> str | None:
    """A path argument as text; None for a file descriptor (no name to check)."""
    if isinstance(value, int) or value is None:
        return None
    if isinstance(value, str | bytes | os.PathLike):
        return os.fsdecode(value)
    return repr(value)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    # Runs for every audited operation in the process: return at once unless recording.
    recording = _current
    if recording is None or event not in _EVENTS:
        return
    if event == _SPAWN:
        recording.spawned.append([os.fsdecode(part) for part in (args[1] or [])])
        return
    path = _path(args[0] if args else ".")
    if path is not None:
        (recording.opened if event == _OPEN else recording.listed).append(path)


@contextlib.contextmanager
def recording() -> Iterator[Recording]:
    """Record what the process opens, lists and runs inside the block (one block at a time)."""
    global _installed, _current
    with _lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True
        assert _current is None, "recording() blocks do not nest"
        _current = Recording()
        recorded = _current
    try:
        yield recorded
    finally:
        _current = None
