"""Run a sync tool in its own thread, and stop it when its call is cancelled.

Python cannot kill a thread. What it can do, and what this module does on
cancellation or timeout:

1. set the call's ``cancelled`` event, which a tool that asks for its
   ``CallContext`` checks in its loops, stopping cleanly;
2. for a tool that does not, raise ``ToolCancelled`` inside the thread
   (``PyThreadState_SetAsyncExc``), which stops pure-Python code at its
   next bytecode boundary (``finally`` blocks and ``with`` exits still run).

A thread blocked inside C code (a socket read, ``time.sleep``) sees neither
until the C call returns; it then finishes in the background and its result
is dropped. Each call gets a fresh daemon thread rather than a pool worker,
so an exception injected late can never land in code that runs someone
else's call.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from assistant.tools.base import ToolCancelled

logger = logging.getLogger("assistant.tools")

T = TypeVar("T")

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
_set_async_exc.restype = ctypes.c_int


class _CallThread(threading.Thread):
    """One call's thread: runs the function once and hands the outcome to the loop."""

    def __init__(self, function: Callable[[], Any], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.function = function
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._running = False
        self._finished = False

    def run(self) -> None:
        outcome: tuple[bool, Any] = (False, ToolCancelled("cancelled before it started"))
        try:
            with self._lock:
                start = not self._finished
                self._running = start
            if start:
                try:
                    outcome = (True, self.function())
                except BaseException as exc:
                    outcome = (False, exc)
                with self._lock:
                    self._running = False
                    self._finished = True
                # An exception injected just before _running went false may still be pending: clear it.
                _set_async_exc(ctypes.c_ulong(self.ident or 0), ctypes.py_object())
        except ToolCancelled as exc:
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self._loop.call_soon_threadsafe(self._settle, outcome)

    def _settle(self, outcome: tuple[bool, Any]) -> None:
        if self.future.done():
            return
        ok, value = outcome
        if ok:
            self.future.set_result(value)
        else:
            self.future.set_exception(value)

    def interrupt(self) -> bool:
        """Raise ``ToolCancelled`` in the thread if the function is still running there."""
        with self._lock:
            if not self._running:
                self._finished = True
                return False
            _set_async_exc(ctypes.c_ulong(self.ident or 0), ctypes.py_object(ToolCancelled))
            return True


async def run_in_thread(function: Callable[[], T], cancelled: threading.Event, name: str, interrupt: bool = True) -> T:
    """Await ``function()`` run in a new thread; cancelling the await stops the thread as far as Python can.

    ``cancelled`` is always set; ``interrupt`` false leaves a function that
    watches ``cancelled`` to stop on its own, cleanly.
    """
    thread = _CallThread(function, name)
    thread.start()
    try:
        return await asyncio.shield(thread.future)  # type: ignore[no-any-return]
    except asyncio.CancelledError:
        cancelled.set()
        if interrupt and thread.interrupt():
            logger.debug("interrupted thread of %s", name)
        thread.future.add_done_callback(lambda f: _log_late(f, name))
        raise


def _log_late(future: asyncio.Future[Any], name: str) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is None:
        logger.info("%s finished after its call was cancelled; its result was dropped", name)
    elif not isinstance(error, ToolCancelled):
        logger.warning("%s failed after its call was cancelled: %r", name, error)
