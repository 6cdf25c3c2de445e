"""Real headless Chromium for the browser client's tests, with a spoken microphone.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``make test``),
driven by Playwright. Its fake media devices stand in for the hardware: the
microphone plays a WAV spoken by espeak-ng at test time, the camera shows
Chromium's test pattern, and screen sharing captures the page itself.
Everything the page loads comes from the server under test.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Request, async_playwright

from assistant.protocol import AudioChunk, ClientEvent
from tests.support.scripted import ScriptedSession

CHROMIUM = Path("/usr/bin/chromium")
# From docs/testing.md: no sandbox as root, no GPU, and no background traffic to hosts it cannot reach.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--auto-select-desktop-capture-source=Entire screen",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 820}

INPUT_RATE = 16_000
VOICED_RMS = 0.02  # a 20 ms chunk louder than this (full scale 1.0) counts as speech


def require_tools(*names: str) -> None:
    """Fail with the install command when a Debian tool the test needs is missing."""
    missing = [name for name in names if shutil.which(name) is None]
    if not CHROMIUM.exists():
        missing.append("chromium")
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: `make test` installs them from scripts/debian-test.txt "
            f"(apt-get install {' '.join(missing)})"
        )


def spoken_wav(text: str, path: Path, *, lead_s: float = 0.5, tail_s: float = 2.5, speed: int = 160) -> Path:
    """``text`` spoken by espeak-ng as 16 kHz mono, trimmed, padded with real silence.

    The padding matters: after the end of a ``%noloop`` file Chromium's fake
    microphone keeps repeating its last 10 ms buffer, so the file must end in
    silence for the page to capture silence afterwards.
    """
    require_tools("espeak-ng", "sox")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run(
        [
            "sox", str(raw), "-r", str(INPUT_RATE), "-c", "1", "-b", "16", str(path),
            "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse",
            "pad", str(lead_s), str(tail_s),
        ],
        check=True,
    )  # fmt: skip
    raw.unlink()
    return path


def samples(pcm: bytes) -> np.ndarray:
    """16-bit little-endian PCM as floats in [-1, 1)."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768


def rms(pcm: bytes) -> float:
    return float(np.sqrt(np.mean(samples(pcm) ** 2))) if len(pcm) >= 2 else 0.0


def voiced_seconds(pcm: bytes, rate: int = INPUT_RATE) -> float:
    """Seconds of 20 ms frames louder than ``VOICED_RMS``."""
    frame = rate // 50
    audio = samples(pcm)
    frames = audio[: len(audio) // frame * frame].reshape(-1, frame)
    return float(np.sum(np.sqrt(np.mean(frames**2, axis=1)) > VOICED_RMS)) * 0.02


RESTART_ERRORS = ("ERR_CONNECTION_REFUSED", "ERR_SOCKET_NOT_CONNECTED", "ERR_CONNECTION_RESET")


class Browsing:
    """One Chromium with one page, recording what the page asked for and complained about."""

    def __init__(self, browser: Browser, page: Page) -> None:
        self.browser = browser
        self.page = page
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", self._request)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _console(self, message: ConsoleMessage) -> None:
        # A refused reconnection attempt while a server restarts is logged by the browser, not the page: the
        # websocket, and the page's fetch of /config.json before it asks for a token (refused once the process
        # is gone; a socket that is not connected, or reset, while it exits).
        refused = message.text.startswith("WebSocket connection to") or message.text.startswith(
            tuple(f"Failed to load resource: net::{error}" for error in RESTART_ERRORS)
        )
        if message.type == "error" and not refused:
            self.errors.append(f"console: {message.text}")

    async def stats(self) -> dict[str, Any]:
        """The page's own counters (``window.assistant.stats()``)."""
        result: dict[str, Any] = await self.page.evaluate("window.assistant.stats()")
        return result

    async def wait_for_stats(
        self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = 20.0
    ) -> dict[str, Any]:
        """Poll the page's counters until ``predicate`` holds; fail saying ``what`` never happened."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        stats = await self.stats()
        while not predicate(stats):
            if loop.time() > deadline:
                pytest.fail(f"timed out waiting for {what}; page stats: {json.dumps(stats)}")
            await asyncio.sleep(0.05)
            stats = await self.stats()
        return stats

    async def bubbles(self, role: str) -> list[str]:
        """The transcript's bubbles of ``role`` ("user" or "model"), oldest first."""
        texts: list[str] = await self.page.locator(f"#log .message.{role} .text").all_inner_texts()
        return texts

    async def restart_microphone(self) -> None:
        """Mute and unmute: the fake microphone plays its file again from the start."""
        await self.page.click("#mic")
        await self.wait_for_stats(lambda s: not s["micOpen"], "the microphone to close")
        await self.page.click("#mic")
        await self.wait_for_stats(lambda s: s["micOpen"], "the microphone to reopen")

    def outside_requests(self, origin: str) -> list[str]:
        """Requests that left the page's own origin (there must be none)."""
        return [url for url in self.requests if not (url.startswith(origin) or url.startswith(("data:", "blob:")))]


@asynccontextmanager
async def chromium(
    url: str,
    *,
    microphone: Path | None = None,
    camera: Path | None = None,
    viewport: dict[str, int] | None = None,
    color_scheme: str = "dark",
) -> AsyncIterator[Browsing]:
    """Chromium on ``url``; the fake microphone plays ``microphone`` once (silence without one).

    The fake camera shows ``camera`` (a Y4M or MJPEG file, looped), or Chromium's test pattern without one.
    """
    require_tools()
    flags = list(CHROMIUM_FLAGS)
    if microphone is not None:
        flags.append(f"--use-file-for-fake-audio-capture={microphone}%noloop")
    if camera is not None:
        flags.append(f"--use-file-for-fake-video-capture={camera}")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=flags)
        try:
            context = await browser.new_context(viewport=viewport or PHONE, color_scheme=color_scheme)  # type: ignore[arg-type]
            page = await context.new_page()
            browsing = Browsing(browser, page)
            await page.goto(url)
            yield browsing
        finally:
            await browser.close()


async def next_event(session: ScriptedSession, timeout: float = 20.0) -> ClientEvent:
    """Whatever the client sends next, audio included."""
    event: ClientEvent = await session.expect(object, timeout=timeout, skip_audio=False)  # type: ignore[arg-type]
    return event


async def utterance(
    session: ScriptedSession, *, min_voiced_s: float = 0.3, end_silence_s: float = 0.4, timeout: float = 20.0
) -> bytes:
    """Wait for the user to speak and stop (a scripted stand-in for voice activity detection).

    Returns the 16 kHz PCM from the first voiced chunk to the end of the
    silence that ended it. Events other than audio are ignored here.
    """
    pcm = bytearray()
    voiced = silence = 0.0
    while voiced < min_voiced_s or silence < end_silence_s:
        event = await next_event(session, timeout)
        if not isinstance(event, AudioChunk):
            continue
        assert event.sample_rate == INPUT_RATE
        loud = rms(event.pcm) > VOICED_RMS
        if loud:
            voiced += event.duration_s
            silence = 0.0
        elif voiced:
            silence += event.duration_s
        if voiced or loud:
            pcm += event.pcm
    return bytes(pcm)
