"""Screenshots of the browser client for docs/, from a staged conversation.

    .venv/bin/python -m tests.support.web_screenshots docs/

The page is the real one in headless Chromium, served by a real
``LiveServer``; the conversation comes from the scripted backend (so the
pictures do not depend on a model), and the camera is Chromium's fake test
pattern.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import numpy as np

from assistant.cli.serve import default_static_dir
from assistant.protocol import FunctionCall, ServerMessage, TextInput, ToolResponses
from assistant.server import LiveServer, ServerConfig
from assistant.session import MemoryResumptionStore
from tests.support.browser import DESKTOP, PHONE, Browsing, chromium
from tests.support.scripted import ScriptedBackend, ScriptedSession

SHOPPING = "Flour, 250 g\nEggs, 3\nMilk, 500 ml\nButter\nA pinch of salt"


def murmur(seconds: float) -> bytes:
    """Quiet 24 kHz audio, so the page shows the assistant speaking."""
    t = np.arange(round(seconds * 24_000)) / 24_000
    return (0.05 * np.sin(2 * np.pi * 180 * t) * 32767).astype("<i2").tobytes()


async def staged(session: ScriptedSession) -> None:
    await session.expect(TextInput)
    session.emit(ServerMessage.calls([FunctionCall(id="c1", name="get_local_time", args={})]))
    await session.expect(ToolResponses)
    session.emit(ServerMessage.output_transcript("It's twenty to one on Saturday, your time."))
    session.emit(ServerMessage.turn_done())
    session.emit(
        ServerMessage.input_transcript("Could you write down what I need", False),
        ServerMessage.input_transcript(" for pancakes?", True),
    )
    note = {"title": "Pancakes", "text": SHOPPING}
    session.emit(ServerMessage.calls([FunctionCall(id="c2", name="show_note", args=note)]))
    await session.expect(ToolResponses)
    session.emit(
        ServerMessage.output_transcript("Done, the list is on your screen."),
        ServerMessage.output_transcript(" Flour, eggs, milk, butter and a pinch of salt."),
        ServerMessage.model_audio(murmur(30)),
    )
    await session.closed.wait()


async def shoot(page: Browsing, camera: bool, path: Path) -> None:
    await page.page.click("#start")
    await page.wait_for_stats(lambda s: s["state"] == "open", "the page to connect")
    await page.page.fill("#text-input", "What time is it for me?")
    await page.page.press("#text-input", "Enter")
    await page.page.locator("#log .note").wait_for()
    if camera:
        await page.page.click("#camera")
        await page.wait_for_stats(lambda s: s["video"]["sent"] >= 1, "a camera frame")
    await page.wait_for_stats(lambda s: s["playback"]["playing"], "the reply to play")
    await page.page.locator("#text-input").blur()
    await page.page.screenshot(path=str(path))


async def main(folder: Path) -> None:
    backend = ScriptedBackend(staged)
    server = LiveServer(ServerConfig(port=0, static_dir=default_static_dir()), backend, store=MemoryResumptionStore())
    await server.start()
    url = f"http://127.0.0.1:{server.port}/"
    try:
        async with chromium(url, viewport=PHONE) as phone:
            await shoot(phone, camera=False, path=folder / "web-phone.png")
        async with chromium(url, viewport=DESKTOP) as desktop:
            await shoot(desktop, camera=True, path=folder / "web-desktop.png")
    finally:
        await server.stop()
    backend.check()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="where web-phone.png and web-desktop.png go")
    asyncio.run(main(parser.parse_args().folder))
