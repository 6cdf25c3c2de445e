"""Reading a quoted passage's original aloud: "read it in Tamil" after a couplet.

A knowledge search whose collection keeps originals says so in its output
(``read_aloud``: the espeak-ng voice and the passage metadata field, from
the persona). When the user then asks to hear it ("read it in Tamil", "can
you say that in the original?", "Tamil, please"), the dialogue reads the
original of the passage it last quoted, in that voice, instead of searching
again. Asking about the language ("what does Tamil culture say about
guests?") is not asking to hear it: a request names the field's language or
"the original" together with a verb of speaking, or consists of little else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assistant.protocol import Content

SEARCH_TOOL = "search_knowledge"
_SPEAKING = re.compile(
    r"\b(?:read|say|said|recite|speak|hear|sound|sounds|listen|pronounce|chant|sing)\b", re.IGNORECASE
)
_ABOUT = re.compile(r"\b(?:say|says|said|teach|teaches)\s+about\b", re.IGNORECASE)
_FILLER = frozenset(
    "please now again it that this the in of out loud aloud original can you could would me let ok okay".split()
)


@dataclass(frozen=True, slots=True)
class Original:
    """The original text of the passage last quoted, and the espeak-ng voice that reads it."""

    text: str
    voice: str
    language: str  # the metadata field naming it ("tamil"), as a user would say it


def last_original(turns: Sequence[Content]) -> Original | None:
    """The original of the best passage of the most recent search that offered one."""
    for turn in reversed(turns):
        for part in turn.parts:
            response = part.function_response
            if response is None or response.name != SEARCH_TOOL:
                continue
            found = _original(response.response or {})
            if found is not None:
                return found
    return None


def _original(response: dict[str, Any]) -> Original | None:
    output = response.get("output")
    if not isinstance(output, dict):
        return None
    hint, passages = output.get("read_aloud"), output.get("passages")
    if not isinstance(hint, dict) or not isinstance(passages, list) or not passages:
        return None
    field, voice = str(hint.get("field", "")), str(hint.get("voice", ""))
    metadata = passages[0].get("metadata") if isinstance(passages[0], dict) else None
    text = metadata.get(field) if isinstance(metadata, dict) else None
    if not field or not voice or not isinstance(text, str) or not text.strip():
        return None
    return Original(text.strip(), voice, field.lower())


def asks_for_original(text: str, original: Original) -> bool:
    """Whether ``text`` asks to hear ``original`` ("read it in Tamil", "the original, please")."""
    words = re.findall(r"[a-z']+", text.lower())
    names = {original.language, "original"}
    if not names & set(words):
        return False
    spoken = _ABOUT.sub(" ", text)  # "what does Tamil culture say about guests" asks about content
    return bool(_SPEAKING.search(spoken)) or all(word in _FILLER or word in names for word in words)
