"""Per-model differences of the Live models (``quirks``), against a fake Gemini that behaves like each.

The fake is told what each model refuses (``ModelRules``, written from the
models' documentation in the test), independently of the product's table:
a conversation must get through whichever model the session talks to,
including a re-seed after a dropped connection.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types

from assistant.backends.gemini.options import DEFAULT_MODEL
from assistant.backends.gemini.quirks import PLAIN, quirks_for
from tests.support.fake_gemini import INTERNAL_REASON, FakeConnection, ModelRules
from tests.test_gemini_conversations import ChainFactory, declarations, transcript
from tests.test_gemini_conversations import make_chain as make_chain  # the fixture
from tests.test_server_sdk import turn

MODELS = {
    "gemini-3.8-live": ModelRules(refuses_thinking=True, needs_history_config=True),
    "gemini-3.1-flash-live-preview": ModelRules(needs_history_config=True),
    "gemini-2.5-flash-native-audio-preview-12-2025": ModelRules(),
}


def test_the_default_model_is_the_stable_live_model_and_the_table_knows_it() -> None:
    assert DEFAULT_MODEL == "gemini-3.8-live"
    assert quirks_for("models/gemini-3.8-live") == quirks_for(DEFAULT_MODEL)
    assert not quirks_for(DEFAULT_MODEL).thinking and quirks_for(DEFAULT_MODEL).non_blocking_default
    assert quirks_for("gemini-3.1-flash-live-preview").history_config
    assert quirks_for("gemini-2.5-flash-native-audio-preview-12-2025") == PLAIN
    assert quirks_for("publishers/google/models/gemini-live-2.5-flash-native-audio") == PLAIN


def config() -> types.LiveConnectConfig:
    """A client written for any Live model: thinking settings, and a function with no behavior."""
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        thinking_config=types.ThinkingConfig(thinking_budget=256),
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(name="turn_on_lights")])],
    )


@pytest.mark.parametrize("model", list(MODELS))
async def test_a_conversation_and_a_re_seed_get_through_every_model(make_chain: ChainFactory, model: str) -> None:
    rules = MODELS[model]
    setups: list[dict[str, Any]] = []

    async def first(c: FakeConnection) -> None:
        setups.append(c.setup_json["setup"])
        await c.exchange("hello", "Hi there.", handle=False)  # no handle: the next connection is re-seeded
        await c.close(1011, INTERNAL_REASON)

    async def second(c: FakeConnection) -> None:
        setups.append(c.setup_json["setup"])
        seed = await c.next("clientContent")
        assert seed.client_content is not None and seed.client_content.turns is not None
        assert [turn.text() for turn in seed.client_content.turns] == ["hello", "Hi there."]
        await c.exchange("still there?", "Yes.")

    async with make_chain([first, second], rules=rules) as chain:
        async with chain.client().aio.live.connect(model=model, config=config()) as session:
            await session.send_realtime_input(text="hello")
            assert transcript(await turn(session)) == "Hi there."
            await session.send_realtime_input(text="still there?")
            assert transcript(await turn(session)) == "Yes."
    assert [setup["model"] for setup in setups] == [f"models/{model}"] * 2
    thinking = [bool(setup.get("generationConfig", {}).get("thinkingConfig")) for setup in setups]
    assert thinking == [not rules.refuses_thinking] * 2  # left out only where the model refuses it
    [declaration] = declarations(setups[0]["tools"])
    # 3.8 would run a function declared without behavior as NON_BLOCKING; the client meant BLOCKING.
    assert declaration.get("behavior") == ("BLOCKING" if quirks_for(model).non_blocking_default else None)
    assert "historyConfig" not in setups[0]  # nothing to seed on the first connection
    assert ("historyConfig" in setups[1]) == rules.needs_history_config
