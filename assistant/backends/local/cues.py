"""Cues: the shape of a request, for routing (``cue_boosts`` and the router).

Whether the user means the camera or the screen, their documents, their own
things, or the world at large. These are not tool arguments (``extract``)
but hints that tip the router between tools that look alike, and that let
the dialogue answer a general question honestly when no tool can.
"""

from __future__ import annotations

import re
from datetime import datetime

from assistant.backends.local import extract

_FILLERS = r"^(?:(?:please|so|hey|and|but|ok|okay|um|uh|well)[\s,]+)*"
_VIEW = re.compile(
    r"\b(?:camera|screen|holding|in my hands?|in front of (?:me|you|the camera)|showing you|can you see|"
    r"do you see|read (?:this|that|it|out|what))\b",
    re.IGNORECASE,
)
_DOCUMENTS = re.compile(
    r"\b(?:my|the) (?:notes|documents|docs|files|manual|handbook|knowledge base)\b", re.IGNORECASE
)
_ABOUT_ME = re.compile(
    _FILLERS + r"(?:what|what's|whats|who|who's|whos|when|when's|where|where's|which|how|do you remember|"
    r"can you (?:remember|recall)|remind me (?:what|where|when|who|how))\b",
    re.IGNORECASE,
)
_MINE = re.compile(r"\b(?:my|i)\b", re.IGNORECASE)
_YOURS = re.compile(r"\b(?:you|your|yourself)\b", re.IGNORECASE)
_MEMORY = re.compile(r"\b(?:remember|recall|told you|tell you|i said|did i say)\b", re.IGNORECASE)
_WORLD_QUESTION = re.compile(
    _FILLERS + r"(?:(?:can|could) you\s+)?(?:tell me (?:about\s+)?|explain\s+|describe\s+)?"
    r"(?:what|what's|whats|who|who's|whos|when|where|where's|which|why|how)?\b",
    re.IGNORECASE,
)
_ASKS = re.compile(
    _FILLERS + r"(?:(?:can|could) you\s+)?(?:tell me|explain|describe|what|what's|whats|who|who's|whos|when|"
    r"where|where's|which|why|how)\b",
    re.IGNORECASE,
)
_FOR_ME = re.compile(r"\s+(?:to|for) me\W*$", re.IGNORECASE)  # "explain black holes to me"
_PERSONAL = re.compile(r"\b(?:i|i'm|im|i've|me|my|mine|myself|we|us|our|you|your|you're|yourself)\b", re.IGNORECASE)


def refers_to_the_view(text: str) -> bool:
    """ "what am I holding", "read this", "what's on my screen": the camera or the screen is meant."""
    return _VIEW.search(text) is not None


def refers_to_documents(text: str) -> bool:
    """ "in my notes", "the manual": the user's documents are meant."""
    return _DOCUMENTS.search(text) is not None


def asks_about_the_user(text: str) -> bool:
    """A question about the user's own things ("what's my locker number", "where did I park").

    Not one about the assistant ("what should I call you").
    """
    lead = _ABOUT_ME.match(text.strip())
    if lead is None:
        return False
    rest = text.strip()[lead.end() :]
    if _MEMORY.search(text) is not None:  # "can you recall where the key is", "what have I told you"
        return True
    return _MINE.search(rest) is not None and _YOURS.search(rest) is None


def asks_about_the_world(text: str) -> bool:
    """A question of general knowledge: a question or "tell me about" that names neither the user nor the assistant.

    "Who wrote Hamlet?", "explain black holes", "can you tell me about the
    Romans" are; "how are you", "what's my name", "how should I live" are not.
    """
    spoken = text.strip()
    ask = _ASKS.match(spoken)
    if ask is None:
        return False
    lead = _WORLD_QUESTION.match(spoken)
    rest = _FOR_ME.sub("", spoken[lead.end() if lead else ask.end() :])
    return _PERSONAL.search(rest) is None and len(rest.split()) >= 1


PARSED_BOOST = 0.25  # added to an intent's similarity when its argument parser finds a whole request...
CUE_BOOST = 0.15  # ...or when a word names what the request is about (the camera, the user's notes)


def cue_boosts(text: str, now: datetime | None = None) -> dict[str, float]:
    """Deterministic cues that back an intent the embeddings alone find close.

    Each cue is the tool's own argument parser finding a complete request
    (an arithmetic expression, "remind me ... in ten minutes" with its time,
    "remember that ..." with its fact) or a word that names what the request
    is about: the camera or screen, the user's documents, the user's own
    things in a question ("what's my locker number"). Sentence embeddings
    weigh the topic ("my sister", "the garage code") as much as the ask, so
    a cue that reads the ask tips the close calls.
    """
    boosts = {}
    if extract.arithmetic_expression(text):
        boosts["calculate"] = PARSED_BOOST
    found = extract.reminder(text, now or datetime.now().astimezone())
    if found is not None and found[1] is not None:
        boosts["reminder"] = PARSED_BOOST
    if extract.fact_to_remember(text):
        boosts["remember"] = PARSED_BOOST
    elif refers_to_documents(text):
        boosts["search"] = PARSED_BOOST
    elif refers_to_the_view(text):
        boosts["look"] = CUE_BOOST
    elif asks_about_the_user(text):
        boosts["recall"] = PARSED_BOOST
    return boosts
