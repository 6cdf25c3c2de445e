"""The browser client's page: what it loads, its accessibility tree, its layout."""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from assistant.cli.serve import default_static_dir
from tests.conftest import ServerFactory
from tests.support.browser import DESKTOP, PHONE, chromium
from tests.support.scripted import ScriptedBackend, idle

# Every control a person uses, by the name a screen reader announces.
EXPECTED_CONTROLS = [
    "- status: Connected",
    '- button "New conversation"',
    '- button "Settings"',
    '- log "Transcript"',
    '- textbox "Message"',
    '- button "Send message"',
    '- button "Camera"',
    '- button "Microphone" [pressed]',
    '- button "Share screen"',
    '- button "End conversation"',
]

BOXES = """() => [...document.querySelectorAll("button, input")]
  .filter((element) => element.checkVisibility())
  .map((element) => {
    const box = element.getBoundingClientRect();
    return { id: element.id || element.getAttribute("aria-label"), left: box.left, right: box.right,
             top: box.top, bottom: box.bottom, width: box.width, height: box.height };
  })"""


async def assert_fits(page: Page, viewport: dict[str, int]) -> None:
    """No sideways scrolling; every visible control on screen and big enough to touch."""
    assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    for box in await page.evaluate(BOXES):
        assert 0 <= box["left"] and box["right"] <= viewport["width"], box
        assert 0 <= box["top"] and box["bottom"] <= viewport["height"], box
        assert min(box["width"], box["height"]) >= 44, f"touch target too small: {box}"


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_controls_are_named_reachable_and_fit_the_screen(
    live_server: ServerFactory, viewport: dict[str, int]
) -> None:
    async with live_server(ScriptedBackend(idle), static_dir=default_static_dir()) as server:
        origin = f"http://127.0.0.1:{server.port}"
        async with chromium(f"{origin}/", viewport=viewport) as browsing:
            page = browsing.page
            await page.click("#start")
            await browsing.wait_for_stats(lambda s: s["state"] == "open" and s["micOpen"], "the page to connect")
            tree = await page.locator("body").aria_snapshot()
            for line in EXPECTED_CONTROLS:
                assert line in tree, f"{line!r} missing from the accessibility tree:\n{tree}"
            assert "- button\n" not in tree and '- button ""' not in tree  # no unnamed button

            await assert_fits(page, viewport)

            stage = await page.locator(".stage").bounding_box()
            conversation = await page.locator(".conversation").bounding_box()
            assert stage is not None and conversation is not None
            if viewport is PHONE:  # one column: the stage above the conversation
                assert stage["y"] + stage["height"] <= conversation["y"]
            else:  # side by side
                assert stage["x"] + stage["width"] <= conversation["x"]

            # The settings dialog is modal, labelled, and closes without changing anything on Cancel.
            await page.click("#open-settings")
            dialog = await page.locator("dialog").aria_snapshot()
            for field in ['combobox "Voice"', 'textbox "Instructions for the assistant"', 'checkbox "Push to talk']:
                assert field in dialog, dialog
            await page.get_by_role("button", name="Cancel").click()
            assert not await page.locator("dialog").is_visible()
            session = (await browsing.stats())["sessionId"]
            assert session is not None

            # Push-to-talk adds the widest control; everything still fits.
            await page.click("#open-settings")
            await page.check("#push-to-talk")
            await page.click("#save-settings")
            await browsing.wait_for_stats(lambda s: s["state"] == "open" and s["sessionId"] != session, "reconnection")
            assert '- button "Hold to talk"' in await page.locator("body").aria_snapshot()
            await assert_fits(page, viewport)

            # Ending hangs up and releases the microphone; the page offers to continue.
            await page.click("#end")
            await browsing.wait_for_stats(lambda s: s["state"] == "closed" and not s["micOpen"], "the end")
            assert await page.get_by_role("button", name="Continue").is_visible()

            assert browsing.outside_requests(origin) == []
            assert browsing.errors == []
