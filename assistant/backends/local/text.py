"""Text helpers for speech: where to cut a reply for synthesis, and what is speakable.

Speech starts sooner when synthesis starts on the first clause instead of
the first sentence, and a long reply sounds natural when it is cut at
sentence ends. ``SentenceSplitter`` takes text as it streams (token by token
from an LLM, or a whole template at once) and yields pieces as soon as they
are safe to speak: a boundary counts only once the character after it has
arrived, so "3.5" and "e.g." are not cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The first piece is kept short because nothing is heard until it is synthesised: Piper takes
# about 100 ms per second of speech here (a one-word clause 60-90 ms, seven words 280 ms, on 2 cores).
FIRST_CLAUSE_MIN_WORDS = 1  # a first piece may end at the first comma ("Sorry," "Okay,")
FIRST_PHRASE_MIN_WORDS = 3  # without punctuation, a first piece may end before a phrase-opening word...
FIRST_PIECE_MAX_WORDS = 5  # ...and ends after this many words in any case
LONG_CLAUSE_WORDS = 14  # later pieces are cut at a comma only when the sentence is this long
MAX_PIECE_CHARS = 240  # a run-on sentence is cut at a word boundary past this

_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s)|\n+")
_CLAUSE_END = re.compile(r"[,;:]+(?=\s)|\s[-\u2013\u2014]+(?=\s)")
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "approx", "no", "prof", "jr", "sr"}
)
_PHRASE_OPENERS = frozenset(
    "and but because so which that when while where who if or to with for in on at of after before than".split()
)
_MARKUP = re.compile(r"[*_#`~]+|\[(?:[^\]]*)\]\((?:[^)]*)\)")
_SPACES = re.compile(r"\s+")


def speakable(text: str) -> str:
    """Text with Markdown markup removed and whitespace collapsed (LLMs like their asterisks)."""
    return _SPACES.sub(" ", _MARKUP.sub("", text))


@dataclass
class SentenceSplitter:
    """Cuts streaming text into pieces to synthesise; the first piece may be a clause."""

    _buffer: str = ""
    _pieces: int = 0
    _pending: list[str] = field(default_factory=list)

    def feed(self, text: str) -> list[str]:
        """Add text; return the pieces now complete."""
        self._buffer += text
        pieces: list[str] = []
        while (cut := self._next_cut()) is not None:
            piece, self._buffer = self._buffer[:cut], self._buffer[cut:]
            if piece.strip():
                pieces.append(piece)
                self._pieces += 1
        return pieces

    def flush(self) -> list[str]:
        """The rest, at the end of the text."""
        piece, self._buffer = self._buffer, ""
        if piece.strip():
            self._pieces += 1
            return [piece]
        return []

    def _next_cut(self) -> int | None:
        """The earliest safe cut, so a template that arrives whole is cut as the same text streamed would be."""
        text = self._buffer
        cuts: list[int] = []
        for match in _SENTENCE_END.finditer(text):
            if not self._is_abbreviation(text, match.start()):
                cuts.append(match.end())
                break
        threshold = FIRST_CLAUSE_MIN_WORDS if self._pieces == 0 else LONG_CLAUSE_WORDS
        for match in _CLAUSE_END.finditer(text):
            if len(text[: match.start()].split()) >= threshold:
                cuts.append(match.end())
                break
        if self._pieces == 0 and (phrase := self._first_phrase_cut(text)) is not None:
            cuts.append(phrase)
        if cuts:
            return min(cuts)
        if len(text) > MAX_PIECE_CHARS:
            space = text.rfind(" ", 0, MAX_PIECE_CHARS)
            return space if space > 0 else MAX_PIECE_CHARS
        return None

    @staticmethod
    def _first_phrase_cut(text: str) -> int | None:
        """Where to end a first piece that has no punctuation yet: before a phrase opener, or at a length.

        Only complete words count (a word is complete once a space follows it).
        """
        words = list(re.finditer(r"\S+(?=\s)", text))
        for index in range(FIRST_PHRASE_MIN_WORDS, len(words)):
            if words[index].group(0).lower() in _PHRASE_OPENERS:
                return words[index - 1].end()
        if len(words) > FIRST_PIECE_MAX_WORDS:
            return words[FIRST_PIECE_MAX_WORDS - 1].end()
        return None

    @staticmethod
    def _is_abbreviation(text: str, dot: int) -> bool:
        if text[dot] != ".":
            return False
        word = re.findall(r"[\w.]+$", text[:dot])
        if not word:
            return False
        token = word[0].lower()
        return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha() and token != "i")


_PRONOUNS = {
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "i'm": "you're",
    "i've": "you've",
    "i'll": "you'll",
    "i'd": "you'd",
    "am": "are",
    "we": "you",
    "us": "you",
    "our": "your",
    "ours": "yours",
}
_PRONOUN_WORD = re.compile(
    r"\b(" + "|".join(re.escape(word) for word in sorted(_PRONOUNS, key=len, reverse=True)) + r")\b", re.IGNORECASE
)


def second_person(text: str) -> str:
    """The user's words said back to them: "my sister" becomes "your sister"."""

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        replacement = _PRONOUNS[word.lower()]
        # "I" is capitalised wherever it stands; other words only at the start of a sentence.
        keeps_capital = word[0].isupper() and not word.lower().startswith(("i", "i'"))
        return replacement.capitalize() if keeps_capital else replacement

    return _PRONOUN_WORD.sub(swap, text)
