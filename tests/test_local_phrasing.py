"""Spoken answers from the built-in tools' response shapes (tool-contracts.md)."""

from __future__ import annotations

import pytest

from assistant.backends.local.phrasing import phrase_response, spoken_duration, spoken_expression, spoken_number

TIME = {"iso": "2026-11-28T15:42:07+00:00", "time": "3:42 PM", "date": "Saturday, 28 November 2026", "timezone": "UTC"}


@pytest.mark.parametrize(
    ("tool", "variant", "args", "output", "spoken"),
    [
        ("get_current_time", "time", {}, TIME, "It's 3:42 PM."),
        ("get_current_time", "date", {}, TIME, "Today is Saturday, 28 November 2026."),
        ("get_current_time", "time", {"timezone": "Asia/Tokyo", "place": "Tokyo"}, TIME, "It's 3:42 PM in Tokyo."),
        ("calculate", None, {"expression": "12*7"}, {"expression": "12*7", "result": 84}, "12 times 7 is 84."),
        ("calculate", None, {}, {"expression": "15/100*80", "result": 12.0}, "15 percent of 80 is 12."),
        ("calculate", None, {}, {"expression": "sqrt(2)", "result": 1.4142135}, "the square root of 2 is 1.414."),
        (
            "set_timer",
            "timer",
            {"seconds": 300},
            {"status": "started", "label": "timer", "seconds": 300},
            "A timer is set for 5 minutes.",
        ),
        (
            "set_timer",
            "timer",
            {"seconds": 180, "label": "tea"},
            {"status": "started", "label": "tea", "seconds": 180},
            "A tea timer is set for 3 minutes.",
        ),
        (
            "set_timer",
            "timer",
            {"seconds": 180, "label": "tea"},
            {"status": "fired", "label": "tea"},
            "Your tea timer is done.",
        ),
        (
            "set_reminder",
            "reminder",
            {"text": "call my mum", "seconds": 600},
            {"status": "started", "text": "call my mum"},
            "Okay, I'll remind you to call your mum in 10 minutes.",
        ),
        ("set_reminder", None, {}, {"status": "fired", "text": "call my mum"}, "Here's your reminder: call your mum."),
        (
            "remember",
            None,
            {"fact": "my sister's birthday is 3 May"},
            {"stored": "my sister's birthday is 3 May", "id": "1"},
            "Okay, I'll remember that your sister's birthday is 3 May.",
        ),
        (
            "recall",
            None,
            {},
            {"facts": [{"text": "I parked on level 3", "score": 0.7}]},
            "You told me that you parked on level 3.",
        ),
        ("recall", None, {}, {"facts": []}, "I don't have anything about that yet."),
        (
            "describe_view",
            "look",
            {},
            {"description": "One face. Mostly red."},
            "Here's what I see. One face. Mostly red.",
        ),
        (
            "search_knowledge",
            None,
            {},
            {"passages": [{"text": "Refunds take 5 days.", "source": "policy.md"}]},
            "From policy.md: Refunds take 5 days.",
        ),
        ("turn_on_lights", None, {}, {"room": "kitchen", "state": "on"}, "Done. room: kitchen; state: on."),
    ],
)
def test_phrases(tool: str, variant: str | None, args: dict, output: dict, spoken: str) -> None:
    assert phrase_response(tool, variant, args, {"output": output}) == spoken


def test_errors_are_said_plainly() -> None:
    assert phrase_response("describe_view", "look", {}, {"error": "no camera frame yet"}) == (
        "Sorry, that didn't work: no camera frame yet"
    )


def test_numbers_expressions_and_durations_read_aloud() -> None:
    assert spoken_number(84.0) == "84" and spoken_number(2.5) == "2.5" and spoken_number(float("inf")) == "undefined"
    assert spoken_expression("2**10") == "2 to the power of 10"
    assert spoken_expression("10-4") == "10 minus 4"
    assert spoken_expression("5**2") == "5 squared"
    assert spoken_duration(90) == "90 seconds"
    assert spoken_duration(5400) == "1 hour and 30 minutes"
    assert spoken_duration(3600) == "1 hour"
