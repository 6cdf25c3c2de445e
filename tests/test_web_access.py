"""The browser page against a server with an access key, in real headless Chromium.

The page must never keep the long-lived key: opening ``/?key=K`` trades it
for an HttpOnly cookie and a clean address, and every connection uses a
fresh ephemeral token on the constrained path. When a token expires the
server closes with 1008 and the page fetches another and resumes.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import WebSocket

from assistant.cli.serve import default_static_dir
from assistant.protocol import ServerMessage, TextInput
from assistant.server.tokens import EphemeralToken, MemoryTokenStore
from tests.conftest import ServerFactory
from tests.support.browser import Browsing, chromium
from tests.support.scripted import ScriptedBackend, ScriptedSession

WEB = default_static_dir()
KEY = "sesame-0123456789"
CONSTRAINED = "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained"

pytestmark = pytest.mark.slow


class ShortLivedTokens(MemoryTokenStore):
    """The real store, with every token's life cut to ``lifetime_s`` so a test sees one expire."""

    def __init__(self, lifetime_s: float) -> None:
        super().__init__()
        self.lifetime_s = lifetime_s
        self.minted: list[EphemeralToken] = []

    def mint(self, request: dict[str, Any], minted_by: str) -> EphemeralToken:
        token = super().mint(request, minted_by)
        token.expire_at = self.clock() + self.lifetime_s
        self.minted.append(token)
        return token


def record_sockets(browsing: Browsing) -> list[str]:
    urls: list[str] = []

    def opened(socket: WebSocket) -> None:
        urls.append(socket.url)

    browsing.page.on("websocket", opened)
    return urls


async def page_storage(browsing: Browsing) -> str:
    """Everything the page's script can read that could hold a secret."""
    dump: str = await browsing.page.evaluate(
        "JSON.stringify([document.cookie, location.href, {...localStorage}, {...sessionStorage}])"
    )
    return dump


async def test_the_page_trades_its_key_for_a_cookie_and_connects_with_tokens(live_server: ServerFactory) -> None:
    async def script(session: ScriptedSession) -> None:
        if not session.request.history:
            text = await session.expect(TextInput)
            session.emit(ServerMessage.output_transcript(f"echo: {text.text}"), ServerMessage.turn_done())
        await session.closed.wait()

    tokens = ShortLivedTokens(lifetime_s=4.0)
    backend = ScriptedBackend(script)
    async with live_server(backend, static_dir=WEB, api_key=KEY, tokens=tokens) as server:
        origin = f"http://127.0.0.1:{server.port}"
        async with chromium(f"{origin}/") as browsing:
            # Without the key the page gets no token, says why, and stops.
            await browsing.page.click("#start")
            stats = await browsing.wait_for_stats(lambda s: s["state"] == "failed", "the refusal")
            assert stats["handle"] is None and tokens.minted == []
            assert "needs its access key" in await browsing.page.inner_text("#status-text")

            sockets = record_sockets(browsing)
            await browsing.page.goto(f"{origin}/?key={KEY}")
            assert browsing.page.url == f"{origin}/"  # the key left the address bar and the history
            await browsing.page.click("#start")
            await browsing.wait_for_stats(lambda s: s["state"] == "open", "the page to connect")
            await browsing.page.fill("#text-input", "hi")
            await browsing.page.press("#text-input", "Enter")
            first = await browsing.wait_for_stats(
                lambda s: s["handle"] is not None and s["state"] == "open", "the first turn's handle"
            )
            assert await browsing.bubbles("model") == ["echo: hi"]
            assert KEY not in await page_storage(browsing)
            assert "assistant-key" not in await page_storage(browsing)  # HttpOnly: the script cannot read it

            # The token expires: the server closes with 1008, the page gets a new token and resumes.
            await browsing.wait_for_stats(
                lambda s: s["state"] == "open" and s["sessionId"] != first["sessionId"], "the page to resume"
            )
            assert browsing.errors == []
    assert len(tokens.minted) == 2 and len(backend.sessions) == 2
    assert [turn.text() for turn in backend.sessions[1].request.history] == ["hi", "echo: hi"]
    for url, token in zip(sockets, tokens.minted, strict=True):
        assert url.startswith(f"ws://{origin.removeprefix('http://')}{CONSTRAINED}?")
        assert f"access_token={token.name.replace('/', '%2F')}" in url and KEY not in url
    # Only the address the operator opened held the key.
    assert [url for url in browsing.requests if KEY in url] == [f"{origin}/?key={KEY}"]
