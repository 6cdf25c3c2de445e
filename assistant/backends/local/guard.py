"""A guard on what the small chat model says, applied while it streams.

SmolLM2-135M sometimes falls into a loop ("I'm sorry, I'm sorry, I'm
sorry, ..." until the token cap) or drifts into text that is not speech
(markup, stray template tokens, strings of digits). Sampling penalties make
that rarer but never impossible, and once the words are spoken they cannot
be taken back, so ``ReplyGuard`` sits between the model and the voice:

- it holds the text back clause by clause and releases a clause only once
  it has been checked, so a loop is caught before its second turn is
  spoken. A short first clause ("I'm sorry,") waits for the next one, since
  one clause cannot show a loop; anything of a few words, and every
  sentence end, is released at once, so speech starts about as soon as the
  speaker would have cut its first piece anyway;
- a reply is degenerate when a clause of two words or more repeats an
  earlier clause of the same reply, or says the user's words back ("nice
  to meet you." to "nice to meet you") (digits and punctuation aside: "1. Help
  people. 2. Help people."),
  when its last words go round a short cycle (a word or a few, three times
  over), or when a clause is mostly not letters.

A spoken reply is also complete after ``max_sentences`` sentences: the small
model otherwise rambles on to the token cap ("Thank you for taking the time
to share your understanding ..." for "thanks a lot").

When it trips, the reply stops there (the caller stops the generation) and
what was released stays said; ``said_enough`` tells the caller whether a
fallback sentence is needed because nothing useful was released.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MIN_RELEASE_WORDS = 4  # a clause shorter than this waits for the next one (unless a sentence ends)
MAX_HELD_WORDS = 12  # text without punctuation is checked and released after this many words
MAX_CYCLE_WORDS = 6  # loops of up to this many words are caught...
CYCLE_REPEATS = 3  # ...when the cycle comes round this many times in a row
MIN_LETTER_SHARE = 0.6  # of a clause's visible characters, at least this many are letters...
MIN_NOISE_CHARS = 10  # ...judged only on clauses this long ("It's 3." is fine)
MIN_REPEATED_WORDS = 2  # a repeated clause of one word ("yes, yes") is speech; longer ones are a loop
ENOUGH_WORDS = 3  # a stopped reply that released fewer words than this needs a fallback

_BOUNDARY = re.compile(r"[,;:.!?]+|\n+")
_SENTENCE_END = re.compile(r"[.!?]|\n")
_WORD = re.compile(r"[a-z']+")
_TOKEN = re.compile(r"[a-z0-9']+")
_NOT_SPEECH = re.compile(r"<\||\|>|```|</?[a-z_]+>|https?://")


def words_of(text: str) -> list[str]:
    """Lower-case words, digits and punctuation aside: what makes two clauses "the same"."""
    return [word.strip("'") for word in _WORD.findall(text.lower()) if word.strip("'")]


def spoken_tokens(text: str) -> list[str]:
    """Lower-case words and numbers: what a loop goes round ("7? 7? 7?") and what makes a sentence."""
    return [token.strip("'") for token in _TOKEN.findall(text.lower()) if token.strip("'")]


def ends_in_cycle(words: list[str]) -> bool:
    """Whether the last words are one short cycle repeated ``CYCLE_REPEATS`` times ("sorry sorry sorry")."""
    for size in range(1, MAX_CYCLE_WORDS + 1):
        span = size * CYCLE_REPEATS
        if len(words) < span:
            break
        tail = words[-span:]
        if all(tail[i] == tail[i % size] for i in range(span)):
            return True
    return False


def is_noise(clause: str) -> bool:
    """A clause that is not speech: template tokens, markup, links, or mostly symbols and digits."""
    if _NOT_SPEECH.search(clause.lower()):
        return True
    visible = [char for char in clause if not char.isspace()]
    letters = sum(char.isalpha() for char in visible)
    return len(visible) >= MIN_NOISE_CHARS and letters < MIN_LETTER_SHARE * len(visible)


@dataclass
class ReplyGuard:
    """Checks a streamed reply clause by clause; ``feed`` returns the text now safe to speak."""

    echo_of: str = ""  # what the user said: a reply that says it back is degenerate too
    max_sentences: int | None = None  # a spoken reply is complete after this many sentences
    stopped: str | None = None  # why the reply was stopped (None: it is fine so far)
    complete: bool = False  # the reply reached ``max_sentences``: the rest is not wanted
    _held: str = ""  # streamed but not released yet
    _checked: int = 0  # how much of the held text has been checked, clause by clause
    _clauses: set[tuple[str, ...]] = field(default_factory=set)
    _tokens: list[str] = field(default_factory=list)  # words and numbers checked so far
    _released_words: int = 0
    _sentences: int = 0
    _sentence_words: int = 0  # words checked since the last sentence end

    @property
    def said_enough(self) -> bool:
        """Whether what was released stands as an answer on its own."""
        return self._released_words >= ENOUGH_WORDS

    def feed(self, text: str) -> str:
        """Add streamed text; return what is now checked and may be spoken ("" while holding back)."""
        if self.stopped is not None or self.complete:
            return ""
        self._held += text
        release = 0
        for match in _BOUNDARY.finditer(self._held, self._checked):
            if not self._check(self._held[self._checked : match.end()]):
                return self._stop()
            self._checked = match.end()
            sentence = _SENTENCE_END.search(match.group(0)) is not None
            words = len(words_of(self._held[: self._checked]))  # a list's bare "2." waits for its words
            if words and (sentence or words >= MIN_RELEASE_WORDS):
                release = self._checked
            if sentence and self._sentence_words:
                self._sentences += 1
                self._sentence_words = 0
                if self.max_sentences is not None and self._sentences >= self.max_sentences:
                    self.complete = True
                    released = self._release(release)
                    self._held, self._checked = "", 0
                    return released
        tail = self._held[self._checked :]
        if _NOT_SPEECH.search(tail.lower()):
            return self._stop("it is not speech")
        if ends_in_cycle(self._tokens + spoken_tokens(tail)):
            return self._stop("it repeats a word or phrase")
        if len(self._held[release:].split()) >= MAX_HELD_WORDS:
            if not self._check(self._held[self._checked :]):
                return self._stop()
            release = self._checked = len(self._held)
        if not release and self._released_words:
            # The space after a released sentence goes out at once: the voice cuts "I'm fine." into a piece
            # only once it sees that space, and waiting for the next clause cost 300 ms before the first audio.
            release = len(self._held) - len(self._held.lstrip())
        return self._release(release)

    def finish(self) -> str:
        """The generation ended: the rest, if it passes."""
        if self.stopped is not None or self.complete:
            return ""
        if self._held[self._checked :].strip() and not self._check(self._held[self._checked :]):
            return self._stop()
        return self._release(len(self._held))

    def _check(self, clause: str) -> bool:
        """Record one clause; False (with the reason in ``stopped``) when it makes the reply degenerate."""
        words = tuple(words_of(clause))
        tokens = spoken_tokens(clause)
        if is_noise(clause):
            self.stopped = "it is not speech"
        elif len(words) >= MIN_REPEATED_WORDS and words in self._clauses:
            self.stopped = "it repeats itself"
        elif len(words) >= MIN_REPEATED_WORDS and words == tuple(words_of(self.echo_of)):
            self.stopped = "it says the user's words back"
        elif ends_in_cycle(self._tokens + tokens) or (
            not words and tokens and self._tokens[-len(tokens) :] == tokens  # "What's 12 times 7? 7?"
        ):
            self.stopped = "it repeats a word or phrase"
        if self.stopped is not None:
            return False
        if words:
            self._clauses.add(words)
        self._tokens.extend(tokens)
        self._sentence_words += len(tokens)
        return True

    def _release(self, end: int) -> str:
        released, self._held = self._held[:end], self._held[end:]
        self._checked = max(0, self._checked - end)
        self._released_words += len(spoken_tokens(released))
        return released

    def _stop(self, reason: str | None = None) -> str:
        if reason is not None:
            self.stopped = reason
        self._held, self._checked = "", 0
        return ""
