"""Questions about what the user said earlier are answered from the conversation itself."""

from __future__ import annotations

import pytest

from assistant.backends.local.recollect import asked_attribute, recollection


@pytest.mark.parametrize(
    ("question", "attribute"),
    [
        ("What is my name?", "name"),
        ("what's my name", "name"),
        ("Do you remember my favourite colour?", "favourite colour"),
        ("So, who am I?", "name"),
        ("What is the capital of France?", None),
        ("What's my name doing in this file?", None),
        ("Tell me a story about my name", None),
    ],
)
def test_which_attribute_a_question_asks_about(question: str, attribute: str | None) -> None:
    assert asked_attribute(question) == attribute


def test_the_newest_statement_wins_and_names_are_capitalised() -> None:
    turns = [
        "Hello, my name is alice.",
        "My favourite colour is green, by the way.",
        "Actually my name is alice smith.",
    ]
    assert recollection("What is my name?", turns) == "Your name is Alice Smith."
    assert recollection("what's my favourite colour?", turns) == "Your favourite colour is green."
    assert recollection("Who am I?", ["Hi, call me bob."]) == "Your name is Bob."


def test_an_unknown_attribute_is_said_not_invented() -> None:
    assert recollection("What is my name?", ["What time is it?"]) == "You haven't told me your name yet."
    assert recollection("How are you?", ["my name is alice"]) is None
