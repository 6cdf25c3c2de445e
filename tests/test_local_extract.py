"""Deterministic tool arguments from what people say (and how Whisper writes it)."""

from __future__ import annotations

from datetime import datetime

import pytest

from assistant.backends.local import cues, extract


@pytest.mark.parametrize(
    ("said", "expression"),
    [
        ("what's twelve times seven", "12*7"),
        ("What's 12 times 7?", "12*7"),
        ("what is 15 percent of 80", "15/100*80"),
        ("calculate 45 divided by 9", "45/9"),
        ("what's the square root of 144", "sqrt(144)"),
        ("how much is three point five plus twenty-five", "3.5+25"),
        ("add 12 and 30", "12+30"),
        ("subtract 4 from 10", "10-4"),
        ("what is 2 to the power of 10", "2**10"),
        ("what's five squared", "5**2"),
        ("what is one hundred and five minus 6", "105-6"),
        ("what's a thousand divided by eight", "1000/8"),
        ("what is 7 x 8", "7*8"),
        ("1,200 plus 30", "1200+30"),
    ],
)
def test_arithmetic(said: str, expression: str) -> None:
    assert extract.arithmetic_expression(said) == expression


@pytest.mark.parametrize("said", ["what time is it", "tell me a story about 3 dragons", "set a timer", "12"])
def test_no_arithmetic(said: str) -> None:
    assert extract.arithmetic_expression(said) is None


@pytest.mark.parametrize(
    ("said", "seconds"),
    [
        ("set a timer for five minutes", 300),
        ("Set a timer for 5 minutes.", 300),
        ("start a ten minute timer", 600),
        ("timer for an hour and a half", 5400),
        ("half an hour", 1800),
        ("90 seconds", 90),
        ("a minute and a half", 90),
        ("two and a half minutes", 150),
        ("1 hour and 30 minutes", 5400),
        ("a quarter of an hour", 900),
        ("twenty-five seconds", 25),
        ("1 hour 15 minutes", 4500),
        ("3 seconds, 3 seconds", 3),
        ("5 minutes and then 2 minutes", 300),
        ("set a timer", None),
    ],
)
def test_durations(said: str, seconds: float | None) -> None:
    assert extract.duration_seconds(said) == seconds


@pytest.mark.parametrize(
    ("said", "label"),
    [
        ("set a tea timer for 3 minutes", "tea"),
        ("set a timer for the pasta for 10 minutes", "pasta"),
        ("set a timer called eggs for 6 minutes", "eggs"),
        ("set a timer for five minutes", None),
        ("start a ten minute timer", None),
    ],
)
def test_timer_labels(said: str, label: str | None) -> None:
    assert extract.timer_label(said) == label


NOW = datetime(2026, 11, 28, 15, 42)


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("Remind me to call mum in ten minutes.", ("call mum", 600)),
        ("remind me in an hour to take the bread out", ("take the bread out", 3600)),
        ("set a reminder to check the oven in 15 minutes", ("check the oven", 900)),
        ("remind me to water the plants at 5 pm", ("water the plants", 78 * 60)),
        ("remind me at 9:30 am to call the bank", ("call the bank", (17 * 60 + 48) * 60)),
        ("remind me to buy milk", ("buy milk", None)),
        ("in ten minutes remind me to check the laundry", ("check the laundry", 600)),
        ("Ping me in an hour to go for a walk.", ("go for a walk", 3600)),
        ("make sure I remember to turn off the oven in 40 minutes", ("turn off the oven", 2400)),
        ("what time is it", None),
    ],
)
def test_reminders(said: str, expected: tuple[str, float | None] | None) -> None:
    assert extract.reminder(said, NOW) == expected


def test_clock_time_without_am_pm_is_the_next_one_ahead() -> None:
    assert extract.seconds_until_clock_time("at 5", NOW) == (60 + 18) * 60  # 5 pm today, not 5 am tomorrow
    assert extract.seconds_until_clock_time("at 17:30", NOW) == 108 * 60
    assert extract.seconds_until_clock_time("at 3 pm", NOW) == (23 * 60 + 18) * 60


@pytest.mark.parametrize(
    ("said", "fact"),
    [
        ("Remember that my sister's birthday is on the third of May.", "my sister's birthday is on the third of May"),
        ("please remember I parked on level 3", "I parked on level 3"),
        ("note that the wifi password is banana", "the wifi password is banana"),
        ("what do you remember", None),
        ("Please memorise that I'm allergic to penicillin.", "I'm allergic to penicillin"),
        ("Store this: the garage code is 1234.", "the garage code is 1234"),
        ("Just so you know, my bike lock code is 0815.", "my bike lock code is 0815"),
    ],
)
def test_facts(said: str, fact: str | None) -> None:
    assert extract.fact_to_remember(said) == fact


def test_queries() -> None:
    assert extract.recall_query("Do you remember when my sister's birthday is?") == "when my sister's birthday is"
    assert extract.recall_query("where did I park?") == "where did I park"
    assert extract.search_query("search my notes for the project deadline") == "the project deadline"
    assert extract.search_query("look up the refund policy in my documents") == "the refund policy"


@pytest.mark.parametrize(
    ("said", "zone"),
    [
        ("what time is it in New York?", "America/New_York"),
        ("What time is it in Tokyo", "Asia/Tokyo"),
        ("what's the time in london right now", "Europe/London"),
    ],
)
def test_time_zones(said: str, zone: str) -> None:
    place = extract.named_place(said)
    assert place is not None and extract.timezone_for(place) == zone


def test_no_place_or_an_unknown_one() -> None:
    assert extract.named_place("what time is it") is None
    assert extract.named_place("what time is it right now") is None
    assert extract.named_place("what time is it in Narnia") == "narnia"
    assert extract.timezone_for("narnia") is None


@pytest.mark.parametrize(
    ("said", "view", "documents", "about_user", "about_world"),
    [
        ("What does the sign in front of the camera say?", True, False, False, True),
        ("what's on my screen", True, False, True, False),
        ("look through my notes for the recipe", False, True, False, False),
        ("what's my locker number", False, False, True, False),
        ("Can you recall where the spare key is?", False, False, True, False),
        ("What should I call you?", False, False, False, False),
        ("Who wrote Hamlet?", False, False, False, True),
        ("Can you tell me about the Roman Empire?", False, False, False, True),
        ("Explain black holes to me.", False, False, False, True),
        ("How are you today?", False, False, False, False),
        ("How should I deal with anger?", False, False, True, False),
        ("thanks a lot", False, False, False, False),
    ],
)
def test_cues_read_the_shape_of_a_request(
    said: str, view: bool, documents: bool, about_user: bool, about_world: bool
) -> None:
    assert cues.refers_to_the_view(said) is view
    assert cues.refers_to_documents(said) is documents
    assert cues.asks_about_the_user(said) is about_user
    assert cues.asks_about_the_world(said) is about_world
