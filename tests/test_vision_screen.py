"""Screen capture from a real X server (Xvfb), painted with xsetroot."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_vision_sampler import FakeClock
from vision.analysers.colours import ColourAnalyser
from vision.sampler import FrameSampler
from vision.sources import FrameSourceError, ScreenSource, open_source


@pytest.fixture
def xvfb_display(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A 1280x720 virtual screen on a free display number, for the length of one test.

    ``-noreset``: otherwise the server resets (and forgets the painted background) when
    xsetroot, its only client, disconnects.
    """
    for program in ("Xvfb", "xsetroot"):
        assert shutil.which(program), f"{program} is missing: apt-get install xvfb x11-xserver-utils"
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x720x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        number = reader.readline().strip()  # Xvfb writes its display number once it accepts clients
    assert number, "Xvfb did not start"
    display = f":{number}"
    monkeypatch.setenv("DISPLAY", display)
    try:
        yield display
    finally:
        server.terminate()
        server.wait(10)


def paint(display: str, colour: str) -> None:
    subprocess.run(["xsetroot", "-display", display, "-solid", colour], check=True)


def test_screen_frames_show_what_is_on_the_screen(xvfb_display: str) -> None:
    paint(xvfb_display, "#2050c0")
    with ScreenSource(poll_interval_s=0.0) as screen:
        frame = screen.read()
        assert frame is not None and frame.size == (1280, 720)
        assert ColourAnalyser().analyse(frame.image).dominant == "blue"
        paint(xvfb_display, "#d02020")
        later = screen.read()
    assert later is not None and later.timestamp > frame.timestamp
    assert ColourAnalyser().analyse(later.image).dominant == "red"


def test_screen_region_and_sampler(xvfb_display: str) -> None:
    paint(xvfb_display, "#20a040")
    sampler = FrameSampler()
    with ScreenSource(region=(100, 50, 400, 300), poll_interval_s=0.0) as screen:
        sampled = sampler.next_frame(screen)
    assert sampled is not None and sampled.image.shape == (300, 400, 3)


def test_polling_interval_uses_the_injected_clock(xvfb_display: str) -> None:
    clock = FakeClock(10.0)
    screen = ScreenSource(poll_interval_s=0.25, clock=clock, sleep=clock.sleep)
    assert [screen.grab() for _ in range(3)] == [10.0, 10.25, 10.5]
    assert clock.sleeps == [0.25, 0.25]
    screen.close()


def test_a_missing_monitor_and_a_missing_display_are_clear_errors(
    xvfb_display: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(FrameSourceError, match="no monitor 5: this screen has 1"):
        open_source("screen:5").read()
    monkeypatch.delenv("DISPLAY")
    started = time.monotonic()
    with pytest.raises(FrameSourceError, match="DISPLAY is not set"):
        ScreenSource().read()
    assert time.monotonic() - started < 5
