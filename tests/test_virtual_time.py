"""The virtual-time fixture (``tests.support.virtual_time``): clock, timeouts, and the leak check on it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.support.virtual_time import virtual_time

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")


@virtual_time
async def test_an_hour_of_sleeps_and_timeouts_passes_in_no_real_time() -> None:
    loop = asyncio.get_running_loop()
    started, real_start = loop.time(), time.monotonic()
    await asyncio.sleep(3600)
    assert loop.time() - started == pytest.approx(3600)
    never = asyncio.Event()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(30):
            await never.wait()
    assert loop.time() - started == pytest.approx(3630), "the timeout fires exactly at its deadline"
    fired: list[float] = []
    loop.call_later(0.25, lambda: fired.append(loop.time()))
    await asyncio.sleep(1)
    assert fired == [pytest.approx(started + 3630.25)]
    assert time.monotonic() - real_start < 2.0


@virtual_time
async def test_a_timeout_does_not_fire_while_a_thread_works() -> None:
    """Waiting for an executor, the loop waits in real time for it rather than leaping to the deadline."""
    real_start = time.monotonic()
    async with asyncio.timeout(1.0):
        await asyncio.to_thread(time.sleep, 0.3)
    assert time.monotonic() - real_start >= 0.3


def test_a_task_left_sleeping_on_virtual_time_still_fails_its_test(pytester: pytest.Pytester) -> None:
    """Torn down on the real clock, the sleeper's virtual deadline would be long past: it would finish unseen."""
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import asyncio

        from tests.support.virtual_time import virtual_time


        @virtual_time
        async def test_leaves_a_sleeper():
            asyncio.create_task(asyncio.sleep(5), name="sleeper")


        @virtual_time
        async def test_leaves_a_task_that_ends_while_settling():
            asyncio.create_task(asyncio.sleep(0.2), name="nearly-done")
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*the test left 1 task(s) running: sleeper (sleep)*"])
    assert "nearly-done" not in result.stdout.str()
