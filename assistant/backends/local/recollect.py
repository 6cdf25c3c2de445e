"""Answers about what the user said earlier in this conversation, without the chat model.

The offline chat model (SmolLM2-135M) does not use its history: told "my name
is Alice", then asked "what is my name?", it answers "My name is Alex"
(measured). Users state facts about themselves and ask them back all the
time ("my name is...", "my flight is at..."), and a resumed conversation
must still know them, so the router dialogue answers these questions from
the conversation's own user turns: the newest statement of the attribute
asked about wins. Anything else falls through to the router and the model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ATTRIBUTE = r"(?P<attribute>[a-z][a-z']*(?: [a-z][a-z']*){0,2}?)"  # one to three words
# "my name is Alice", "my favourite colour's green", "my flight is at 9"
_STATEMENT = re.compile(rf"\bmy {_ATTRIBUTE}\s+(?:is|was|'s|are)\s+(?P<value>[^.?!;,]+)", re.IGNORECASE)
_CALL_ME = re.compile(r"\bcall me (?P<value>[a-z][a-z'-]*)", re.IGNORECASE)
# "what is my name?", "what's my favourite colour", "do you remember my name", "who am I?"
_LEAD_IN = r"^(?:(?:so|and|ok|okay|hey),?\s+)?"
_QUESTION = re.compile(
    rf"{_LEAD_IN}(?:what(?:'s| is| was)|do you (?:know|remember)|tell me) my {_ATTRIBUTE}\s*\??$", re.IGNORECASE
)
_WHO_AM_I = re.compile(rf"{_LEAD_IN}who am i\s*\??$", re.IGNORECASE)
_NAMES = {"name", "first name"}


def _clean(text: str) -> str:
    return text.strip().rstrip(".?!").strip()


def asked_attribute(question: str) -> str | None:
    """The attribute a question asks about ("name" for "what's my name?"), else None."""
    text = _clean(question) + "?"
    if _WHO_AM_I.match(text):
        return "name"
    match = _QUESTION.match(text)
    return match.group("attribute").strip().lower() if match else None


def stated_value(attribute: str, user_turns: Iterable[str]) -> str | None:
    """What the user last said ``attribute`` is, searching the newest turn first."""
    for turn in reversed(list(user_turns)):
        found: str | None = None
        for match in _STATEMENT.finditer(turn):
            if match.group("attribute").strip().lower() == attribute:
                found = match.group("value").strip()
        if found is None and attribute in _NAMES:
            names = [match.group("value") for match in _CALL_ME.finditer(turn)]
            found = names[-1] if names else None
        if found:
            return found
    return None


def recollection(question: str, user_turns: Iterable[str]) -> str | None:
    """A spoken answer to a question about what the user said, or None when it is not one."""
    attribute = asked_attribute(question)
    if attribute is None:
        return None
    value = stated_value(attribute, user_turns)
    if value is None:
        return f"You haven't told me your {attribute} yet."
    if attribute in _NAMES:
        value = " ".join(word[:1].upper() + word[1:] for word in value.split())
    return f"Your {attribute} is {value}."
