"""What the offline assistant says about itself, built from what the session really has.

A newcomer's first asks are "what can you do?" and "who are you?". The
small chat model answers both with inventions ("1. Help people with their
problems. 2. Help people with their problems. ..."), so the router sends
them here (self-answered intents) and the answer is composed from facts:
the tools this session declared that the router can call, whether a camera
or screen is being shared, whether a chat model is loaded, and who the
system instruction says the assistant is. The same goes for asks that no
offline part can serve (the weather) and, when the only chat model is the
small one, questions of general knowledge: an honest "can't" instead of an
invented fact ("The capital of India is Delhi" for France).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

DEFAULT_IDENTITY = "I'm a voice assistant that runs entirely on this computer, offline"
# What a user can try next, for the first tool the session has (in this order).
EXAMPLES = (
    ("set_timer", "set a timer for five minutes"),
    ("get_current_time", "what time is it"),
    ("calculate", "what's twelve times seven"),
    ("remember", "remember that I parked on level three"),
    ("describe_view", "what do you see"),
    ("search_knowledge", "search my notes for the budget"),
)
NO_FACTS = "Sorry, I can't look that up offline; with a bigger model (--llm-url) or Gemini I could."
NO_WEATHER = "I can't check the weather: I run offline, without a weather service."
# Courtesies are answered without the chat model (whole utterances of these words only).
_THANKS_WORDS = {"thanks", "thank", "cheers"}
_THANKS_FILLER = {"ok", "okay", "you", "so", "very", "much", "a", "lot", "many", "again", "great", "that's", "million"}
_GREETINGS = ("good morning", "good afternoon", "good evening", "hello", "hi", "hey")
_FAREWELLS = {"bye": "Bye!", "goodbye": "Goodbye!", "good night": "Good night!", "see you": "See you!"}
_YOU_ARE = re.compile(r"(?:^|(?<=[.!?\n]))\s*you are\s+(?P<who>[^.!?\n]+)", re.IGNORECASE)
_YOUR_NAME = re.compile(r"(?:^|(?<=[.!?\n]))\s*your name is\s+(?P<name>[^.!?\n,]+)", re.IGNORECASE)
_ADDRESSING = re.compile(r"\b(?:you|your|yours|yourself)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What a session has, as far as answering about itself goes."""

    tools: Collection[str]  # tools declared in the session that the router can call
    instruction: str | None = None  # the system instruction (a persona's, a client's)
    video: bool = False  # a camera or screen frame has arrived
    consulting: bool = False  # questions go to the session's knowledge first (a persona)
    chats: bool = True  # a chat model makes conversation


def identity(instruction: str | None) -> str:
    """Who the assistant is, from the instruction's "You are ..." or "Your name is ...", said in the first person.

    The description stops before it turns to the user ("... who answers
    your questions"), which would read wrongly in the first person.
    """
    text = instruction or ""
    named = _YOUR_NAME.search(text)
    described = _YOU_ARE.search(text)
    if described is not None:
        who = described.group("who").strip()
        addressed = _ADDRESSING.search(who)
        if addressed is not None:
            who = re.split(r",|\s(?:who|that|which)\s", who[: addressed.start()])[0].strip()
        if who:
            return f"My name is {named.group('name').strip()}, {who}" if named else f"I'm {who}"
    if named is not None:
        return f"My name is {named.group('name').strip()}, and I run offline on this computer"
    return DEFAULT_IDENTITY


def abilities(facts: SessionFacts) -> list[str]:
    """What the assistant can do in this session, as verb phrases in a sensible spoken order."""
    tools = set(facts.tools)
    phrases = []
    if "get_current_time" in tools:
        phrases.append("tell the time and date")
    if "calculate" in tools:
        phrases.append("do sums")
    timers = [kind for tool, kind in (("set_timer", "timers"), ("set_reminder", "reminders")) if tool in tools]
    if timers:
        phrases.append("set " + " and ".join(timers))
    if {"remember", "recall"} <= tools:
        phrases.append("remember what you tell me")
    elif "remember" in tools:
        phrases.append("note down what you tell me")
    elif "recall" in tools:
        phrases.append("recall what you told me before")
    if "describe_view" in tools:
        shared = "your camera or screen shows" if facts.video else "your camera shows once you turn it on"
        phrases.append(f"describe what {shared}")
    if "search_knowledge" in tools:
        phrases.append("answer from my sources" if facts.consulting else "search your notes and documents")
    if facts.chats:
        phrases.append("chat a little")
    return phrases


def spoken_list(phrases: list[str]) -> str:
    """ "a, b and c"."""
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def capabilities(facts: SessionFacts) -> str:
    """One sentence of what this session can do, and one with something to try."""
    phrases = abilities(facts)
    if not phrases:
        return "In this session I have no tools and no chat model, so I can't do much, sorry."
    example = next((said for tool, said in EXAMPLES if tool in facts.tools), None)
    tip = f' For example, say "{example}".' if example else ""
    return f"I can {spoken_list(phrases)}.{tip}"


def introduction(facts: SessionFacts) -> str:
    """Who the assistant is and, briefly, what it can do."""
    phrases = abilities(facts)
    can = f" I can {spoken_list(phrases)}." if phrases else ""
    return f"{identity(facts.instruction)}.{can}"


def courtesy(text: str) -> str | None:
    """The reply to a bare thanks, greeting or goodbye ("thanks a lot", "good morning"); None for anything else.

    The small model answers these with rambles or loops; they need no model.
    """
    words = re.findall(r"[a-z']+", text.lower())
    if not words or len(words) > 5:
        return None
    if set(words) & _THANKS_WORDS and set(words) <= _THANKS_WORDS | _THANKS_FILLER:
        return "You're welcome!"
    spoken = " ".join(words)
    for greeting in _GREETINGS:
        if spoken == greeting or spoken in (f"{greeting} there", f"{greeting} assistant"):
            return f"{greeting.capitalize()}! What can I do for you?"
    for farewell, reply in _FAREWELLS.items():
        if spoken == farewell or spoken.startswith(f"{farewell} "):
            return reply
    return None


def answer(intent: str, facts: SessionFacts) -> str:
    """The reply to a self-answered intent (see ``router``)."""
    if intent == "identity":
        return introduction(facts)
    if intent == "capabilities":
        return capabilities(facts)
    if intent == "weather":
        return NO_WEATHER
    if intent == "facts":
        return NO_FACTS
    raise ValueError(f"{intent} is not answered by the assistant itself")
