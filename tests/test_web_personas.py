"""The browser client with personas, in real headless Chromium against a real ``LiveServer``.

The page lists the server's personas (``/personas.json``) in its settings;
choosing Thiruvalluvar makes the next connection ask for it
(``?persona=thiruvalluvar``) together with server tool activity
(``?events=tools``). The model is scripted: it calls ``search_knowledge``,
which the server runs for real over the Thirukkural index, and the page
shows the search as it runs and the best couplet as a card with its Tamil.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from assistant.cli.serve import default_static_dir
from assistant.knowledge import KnowledgeService
from assistant.knowledge.thirukkural import Kural
from assistant.personas import PersonaProfiles, load_persona
from assistant.protocol import FunctionCall, ServerMessage, TextInput, ToolResponses
from assistant.tools.discovery import ToolSources, load_tools
from tests.conftest import ServerFactory
from tests.support.browser import DESKTOP, chromium
from tests.support.scripted import ScriptedBackend, ScriptedSession

pytestmark = pytest.mark.slow

QUESTION = "What does Valluvar say about gratitude?"


@pytest.fixture
async def knowledge(kural_data_dir: Path) -> AsyncIterator[KnowledgeService]:
    service = KnowledgeService()  # the data dir's store, with the Thirukkural indexed
    yield service
    await service.aclose()


async def test_the_persona_picker_and_a_couplet_card_with_its_tamil(
    live_server: ServerFactory, knowledge: KnowledgeService
) -> None:
    persona = load_persona("thiruvalluvar")
    found: list[Kural] = []

    async def valluvar(session: ScriptedSession) -> None:
        setup = session.request.setup
        assert setup.system_instruction is not None
        assert setup.system_instruction.text().startswith(persona.instruction.strip())
        assert {"search_knowledge", "get_local_time", "show_note"} <= {d.name for d in setup.function_declarations()}
        typed = await session.expect(TextInput)
        call = FunctionCall(id="k1", name="search_knowledge", args={"query": typed.text})
        session.emit(ServerMessage.calls([call]))
        [response] = (await session.expect(ToolResponses, timeout=30)).responses
        assert response.response is not None
        kural = Kural.from_metadata(response.response["output"]["passages"][0]["metadata"])
        found.append(kural)
        session.emit(
            ServerMessage.output_transcript(f"Kural {kural.number}, from the chapter {kural.chapter}."),
            ServerMessage.turn_done(),
        )
        await session.closed.wait()

    backend = ScriptedBackend(valluvar)
    profiles = PersonaProfiles(knowledge)
    tools = await load_tools(ToolSources(entry_points=False, knowledge=knowledge))
    try:
        async with live_server(
            backend, tools=tools, profiles=profiles, persona_catalog=profiles.catalog, static_dir=default_static_dir()
        ) as server:
            origin = f"http://127.0.0.1:{server.port}"
            async with chromium(f"{origin}/", viewport=DESKTOP) as browsing:
                page = browsing.page
                await page.click("#open-settings")
                picker = page.locator("#persona")
                await picker.locator("option[value=thiruvalluvar]").wait_for(state="attached")
                assert await picker.locator("option").all_inner_texts() == ["Server default", "Thiruvalluvar"]
                await picker.select_option("thiruvalluvar")
                assert "Thirukkural" in await page.inner_text("#persona-description")
                await page.click("#save-settings")
                await page.fill("#text-input", QUESTION)
                await page.press("#text-input", "Enter")  # starts the conversation and sends the question

                tool = page.locator("#log .tool[data-name=search_knowledge]")
                await tool.locator(".tool-state", has_text="done").wait_for(timeout=30_000)
                card = page.locator("#log .passage").first
                original = card.locator(".passage-original").first
                await original.wait_for()
                [kural] = found
                assert await original.get_attribute("lang") == "ta"
                assert await original.inner_text() == kural.tamil
                assert kural.couplet.splitlines()[0] in await card.locator(".passage-text").first.inner_text()
                assert await card.locator("details summary").inner_text() == "2 more found"
                await page.locator("#log .message.model", has_text=f"Kural {kural.number}").wait_for()
                assert browsing.outside_requests(origin) == [] and browsing.errors == []
    finally:
        await tools.aclose()
    backend.check()
    assert kural.chapter_number == 11  # gratitude, as retrieval finds it (see test_knowledge_thirukkural)
