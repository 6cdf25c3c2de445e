"""The router on its public evaluation set: how people really ask, with the real MiniLM embeddings.

The set (``assistant/bench/routing_set.py``) is held out from the router's
own examples, and the accuracy bar is the issue's: at least 95%.
``assistant bench routing`` prints the same figure with its confusion table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant.backends.local.router import CHAT, FACTS, INTENTS, ToolRouter
from assistant.bench.routing import evaluate
from assistant.bench.routing_set import PHRASINGS
from assistant.embeddings import load_embedder
from tests.support.bench import run_bench

MIN_ACCURACY = 0.95


def normalised(text: str) -> str:
    return " ".join(re.sub(r"[^\w' ]", " ", text.lower()).split())


def test_the_set_is_large_varied_and_held_out() -> None:
    texts = [text for text, _ in PHRASINGS]
    assert len(texts) >= 200 and len(set(texts)) == len(texts)
    examples = {normalised(example) for intent in INTENTS for example in intent.examples}
    copied = [text for text in texts if normalised(text) in examples]
    assert not copied, f"phrasings copied from the router's examples: {copied}"
    recogniser_style = [text for text in texts if text == text.lower() and not re.search(r"[.?!,]", text)]
    assert len(recogniser_style) >= 50
    assert sum(text.lower().startswith(("can you", "could you")) for text in texts) >= 10
    assert sum("please" in text.lower() for text in texts) >= 8
    labels = [label for _, label in PHRASINGS]
    assert labels.count(CHAT) >= 25 and labels.count(FACTS) >= 25
    names = {intent.name for intent in INTENTS if not intent.consulting_only}
    assert set(labels) == names


@pytest.mark.slow
def test_the_router_routes_at_least_95_percent_of_the_set(capsys: pytest.CaptureFixture[str]) -> None:
    score = evaluate(ToolRouter(load_embedder()))
    misrouted = [(o.text, o.expected, o.got) for o in score.misrouted()]
    with capsys.disabled():
        print(f"\nrouting accuracy on {len(score.outcomes)} held-out phrasings: {score.accuracy:.1%}")
    assert score.accuracy >= MIN_ACCURACY, misrouted
    # small talk and general questions never reach a tool
    tools = {intent.name for intent in INTENTS if intent.tool}
    assert not [o.text for o in score.outcomes if o.expected in (CHAT, FACTS) and o.got in tools]


@pytest.mark.slow
def test_bench_routing_reports_the_accuracy_and_the_confusion(tmp_path: Path) -> None:
    stdout, data = run_bench(tmp_path, "routing")
    assert "accuracy" in stdout and "expected \\ routed" in stdout
    assert data["phrasings"] == len(PHRASINGS[::4]) and 0.9 <= data["accuracy"] <= 1
    confusion = data["confusion"]
    assert sum(sum(row.values()) for row in confusion.values()) == data["phrasings"]
    assert len(data["misrouted"]) == data["phrasings"] - sum(row.get(label, 0) for label, row in confusion.items())
