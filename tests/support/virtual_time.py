"""Virtual time for asyncio tests: the event loop's clock jumps to the next timer when nothing else can run.

Turn-taking is timing: a reply waits 500 ms of silence, a wake word opens an
eight-second window, a ``--input`` run gives up after a minute without an
answer. Tested on the real clock those tests take as long as the
conversation and pass or fail with the machine's load. Marked
``@virtual_time``, a test runs on a loop whose clock (``loop.time()``, and so
``asyncio.sleep``, ``asyncio.timeout``, ``wait_for`` and ``call_later``)
stands still while code runs and, once every task waits, moves straight to
the next deadline: a ten-second exchange takes milliseconds, in the same
order every run. It is the fixture LiveKit Agents' tests use, from a
maintained library: looptime (MIT), whose pytest plugin patches every loop
pytest-asyncio makes and turns virtual time on only for marked tests.

What it needs from the code under test: time read from the running loop
(``loop.time()``, ``audio.files.loop_time``, or a ``now`` parameter given
one of those), never ``time.monotonic()`` or ``time.sleep``. Work in a
thread (``asyncio.to_thread``, executors) takes the real time it takes: the
loop's clock then advances in step with the real one. A socket or
subprocess has no such link: a reply it would send a millisecond later loses
to any pending timer, so keep real I/O out of virtual-time tests (the
in-process pipe of ``assistant.session.pipe`` is fine).

The loop stays on virtual time through the test's teardown (``tests/conftest.py``),
so ``no_tasks_left_running`` still catches a task a test left sleeping: on
the real clock, the loop would have found that task's virtual deadline long
past, woken it and let it finish unseen.
"""

from __future__ import annotations

import pytest

virtual_time = pytest.mark.looptime
"""Run the marked test (or, as ``pytestmark``, a module's asynchronous tests) on the loop's virtual clock."""


def runs_on_virtual_time(item: pytest.Item) -> bool:
    """Whether ``item`` runs on virtual time: marked (the closest mark's argument wins) or under ``--looptime``."""
    marks = list(item.iter_markers("looptime"))
    flag = item.config.getoption("looptime", None)  # None: the plugin was turned off (-p no:looptime_plugin)
    enabled = bool(marks) or flag is True
    for mark in reversed(marks):
        if mark.args:
            enabled = bool(mark.args[0])
    return enabled and flag is not False
