"""The Gemini backend offers ``search_knowledge`` to the model, and the server answers it.

``assistant serve --backend gemini --persona thiruvalluvar`` runs as a real
process whose Gemini is the fake upstream (the real wire protocol over TLS).
The upstream setup must carry the persona (its instruction first, its voice,
only its tools, with ``search_knowledge`` declared); a ``toolCall`` for
``search_knowledge`` from the fake must come back as a ``toolResponse`` with
couplets, run by the server over the real Thirukkural index and never seen
by the client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from assistant.knowledge.eval import load_questions
from assistant.knowledge.thirukkural import Kural
from assistant.personas import load_persona
from assistant.protocol import FunctionCall, ServerMessage
from tests.conftest import Certificate
from tests.support.fake_gemini import FakeConnection, FakeGemini
from tests.test_gemini_conversations import MODEL, transcript
from tests.test_gemini_serve import assistant_serve
from tests.test_server_sdk import sdk_client, turn

pytestmark = pytest.mark.slow

QUESTION = "How should I deal with anger?"


async def test_gemini_is_offered_search_knowledge_with_the_persona_and_its_calls_are_answered(
    tls_certificate: Certificate, kural_data_dir: Path
) -> None:
    persona = load_persona("thiruvalluvar")
    [expected] = [q.chapters for q in load_questions() if q.text == QUESTION]
    answered: list[dict[str, Any]] = []

    async def gemini(c: FakeConnection) -> None:
        setup = c.setup
        assert setup is not None and setup.system_instruction is not None
        assert setup.system_instruction.text().startswith(persona.instruction.strip())
        assert setup.voice_name() == persona.voice  # the client chose none
        declarations = {d.name: d for d in setup.function_declarations()}
        assert set(declarations) == {"search_knowledge", "get_current_time"}  # the persona's tools only
        search = c.setup_json["setup"]["tools"][0]["functionDeclarations"]
        [raw] = [d for d in search if d["name"] == "search_knowledge"]
        assert raw["parameters"]["required"] == ["query"] and "Thirukkural" in raw["description"]
        assert await c.text() == QUESTION
        call = FunctionCall(id="kural-1", name="search_knowledge", args={"query": QUESTION})
        await c.send(ServerMessage.calls([call]))
        message = await c.next("toolResponse", timeout=30)
        assert message.tool_response is not None
        [response] = message.tool_response.function_responses
        assert (response.id, response.name) == ("kural-1", "search_knowledge")
        assert response.response is not None
        answered.append(response.response)
        best = Kural.from_metadata(response.response["output"]["passages"][0]["metadata"])
        await c.reply(f"Kural {best.number}, from the chapter {best.chapter}: {best.couplet}")

    async with FakeGemini(tls_certificate, [gemini]) as fake:
        async with assistant_serve(tls_certificate, fake.base_url, "--persona", "thiruvalluvar") as (port, log):
            client = sdk_client(port, tls_certificate)
            config = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO])
            async with client.aio.live.connect(model=MODEL, config=config) as session:
                await session.send_realtime_input(text=QUESTION)
                messages = await turn(session)
        fake.check()

    assert not any(m.tool_call for m in messages), "the server's own tool call reached the client"
    [output] = [answer["output"] for answer in answered]
    assert len(output["passages"]) == 3 and output["read_aloud"] == {"voice": "ta", "field": "tamil"}
    best = Kural.from_metadata(output["passages"][0]["metadata"])
    assert best.chapter_number in expected
    assert output["passages"][0]["metadata"]["tamil"] == best.tamil
    assert transcript(messages).startswith(f"Kural {best.number}, from the chapter {best.chapter}")
    assert any("persona thiruvalluvar" in line for line in log), "\n".join(log)
