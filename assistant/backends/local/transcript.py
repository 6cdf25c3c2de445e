"""The streaming bookkeeping around a recogniser that does not stream: what is committed, what is still heard.

Whisper (``asr``) decodes a window of audio; this module turns repeated
decodes of a growing window into a transcript that only grows:

- **Committed text is forced, not re-decoded.** Text that two successive
  decodes agree on (local agreement) is committed and sent to the client as
  an input-transcription fragment, never revised. Later decodes force the
  committed words as the decoder's prefix, so each call generates only the
  words after them; the final decode at the end of the turn is a tail
  decode of the same kind, not a second pass over the utterance.
- **A bounded window.** Past ``MAX_WINDOW_S`` of audio, committed words are
  aligned to the audio and the audio they cover is dropped; their text moves
  to the decoder's previous-text prompt, so long turns cost no more per call
  than short ones (and never exceed Whisper's 30 s).
- **What the recogniser is prompted with.** The names the user said and the
  assistant's reply when it invites an answer (``recogniser_prompt``).

It is plain code over text and arrays, apart from the engines, so the
agreement rules are tested without a model.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from assistant.backends.local.asr import SAMPLE_RATE, Recognizer, normalise_word, split_words

# No partial decode of less audio: on half a second Whisper guesses, and two guesses that agree are committed.
# Piper's "Set a timer for three seconds." from its first sample, first partial at 0.5 s: 10 of 30 heard as "At a
# time or for 3 seconds." ("at a time." at 0.5 s, "at a time or for three." at 1 s); from 1 s: 0 of 30.
MIN_PARTIAL_WINDOW_S = 1.0
MAX_WINDOW_S = 20.0  # longer turns move committed audio out of the window
KEEP_AFTER_TRIM_S = 5.0
MAX_CONTEXT_CHARS = 400
# A capitalised word that does not start a sentence (nor "I", "I'm"): a name, as Whisper and instructions write them.
_NAME = re.compile(r"(?<![.?!:\n]\s)(?<![.?!:\n])(?<=\s)(?P<name>(?!I\b)[A-Z][a-z]+(?:[-'][A-Za-z]+)*)\b")
# Below this confidence (``StreamingTranscript.confidence``) the user is asked to say it again. Measured by
# ``assistant bench hearing`` (tiny.en, 15 clean requests in two voices; seeds 1 and 2): the least sure clean
# request heard right scores -1.05 ("Hello there.", Piper), the least sure of all -1.11 ("Hello there." heard as
# "The lone air."). Of the garbled requests that were misheard (noise at 0 and -5 dB SNR, backwards, two requests
# at once) -1.2 catches 46 of 99 and 39 of 98, and asks again 0 of 9 and 1 of 5 garbled requests heard right
# anyway; -1.0 would catch 70 of 99 but ask a clean request heard right again.
ASK_AGAIN_BELOW = -1.2
ASK_AGAIN = "Sorry, I didn't catch that. Could you say it again?"
MAX_VOCABULARY = 12  # names in the recogniser's prompt; Whisper's prompt is short, the reply may follow


def reply_prompt(reply: str) -> str:
    """The assistant's last reply as the recogniser's prompt for the next turn, when it invites an answer.

    A reply that asks something ("For how long should I set the timer?") or
    offers something ("I can read it in Tamil if you like.") is often
    answered with its own words, and Whisper hears rare ones far better with
    them in its prompt. Any other reply pulls a new request towards itself:
    after "7 times 8 is 56.", tiny.en heard "set a timer for five seconds"
    as "7 times 4.5 seconds". Measured on 15 two-turn sequences in two
    voices (word error, numbers as digits): no prompt 11-12%, every reply
    13-15%, replies that invite an answer 12-13% with "Tamil" heard right;
    a list of the tools' vocabulary made it worse (18%).
    """
    text = reply.strip()
    if text == ASK_AGAIN:
        return ""  # the user says the request again, not an answer to this
    return text if text.endswith("?") or "if you like" in text.lower() else ""


def vocabulary_prompt(user_turns: Iterable[str]) -> str:
    """The names the user said in this conversation (newest last), as the recogniser's vocabulary.

    Whisper spells a rare name right far more often when its prompt has it,
    and the names the user told the assistant ("my sister's name is Priya")
    come back in later requests. Names are the words written with a capital
    inside a sentence (not "I"). Measured by ``assistant bench hearing`` (15
    requests after a reply, two voices, tiny.en; seeds 1 and 2): word error
    19.4% / 20.6% with the reply prompt alone, 15.0% / 16.1% with the user's
    names. Two other vocabularies were measured and left out: the words that
    ask for the built-in tools ("timer, reminder, ...") after the names,
    17.8% / 17.2%, and a persona's terms (Thiruvalluvar's: "Thiruvalluvar,
    Thirukkural, English, Tamil") before them, 19.4% / 15.6%.
    """
    names: dict[str, str] = {}
    for text in user_turns:
        for match in _NAME.finditer(text):
            name = match.group("name")
            names.pop(name.lower(), None)
            names[name.lower()] = name
    kept = list(names.values())[-MAX_VOCABULARY:]
    return f"{', '.join(kept)}." if kept else ""


def recogniser_prompt(vocabulary: str, reply: str) -> str:
    """What the recogniser is prompted with at the start of a turn: the vocabulary, then the inviting reply."""
    return f"{vocabulary} {reply_prompt(reply)}".strip()


def words_after(earlier: str, text: str) -> str:
    """``text`` without its start that says ``earlier`` again, as the recogniser may have reworded it.

    The words after the last one ``text`` shares with ``earlier`` (matched
    in order, case and punctuation aside), with their leading spaces; all of
    ``text`` when it shares none.
    """
    said = split_words(text)
    matcher = difflib.SequenceMatcher(
        None, [normalise_word(w) for w in split_words(earlier)], [normalise_word(w) for w in said], autojunk=False
    )
    shared = [block for block in matcher.get_matching_blocks() if block.size]
    return "".join(said[shared[-1].b + shared[-1].size :]) if shared else text


@dataclass
class StreamingTranscript:
    """Committed words and the agreement rule that commits more.

    ``window_words`` are committed words still inside the audio window (the
    decoder's forced prefix); ``context_words`` were committed and trimmed
    away with their audio (the decoder's previous-text prompt). ``prompt``
    is what was said just before the turn when it invites an answer
    (``reply_prompt``): the words a user answers with are often the words
    they just heard, and Whisper hears rare ones far better when its prompt
    has them (tiny.en hears "read it in time, Hill" for "read it in Tamil"
    without, "Tamil" with "I can read it in Tamil" as its prompt).
    """

    prompt: str = ""
    context_words: list[str] = field(default_factory=list)
    window_words: list[str] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)  # of each decode whose words were committed
    _previous: list[str] | None = None

    @property
    def prefix(self) -> str:
        return "".join(self.window_words).strip()

    @property
    def context(self) -> str:
        return f"{self.prompt} {''.join(self.context_words)}".strip()[-MAX_CONTEXT_CHARS:]

    @property
    def text(self) -> str:
        return "".join(self.context_words + self.window_words).strip()

    @property
    def confidence(self) -> float | None:
        """The mean log-probability of the decodes whose words make the transcript; None without scores."""
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else None

    @property
    def unsure(self) -> bool:
        """Whether the recogniser was too unsure of these words to act on them (see ``ASK_AGAIN_BELOW``)."""
        confidence = self.confidence
        return bool(self.text) and confidence is not None and confidence < ASK_AGAIN_BELOW

    def agree(self, hypothesis: str, logprob: float | None = None) -> str:
        """Commit what this hypothesis (the words after the prefix) shares with the last one.

        The last word of a hypothesis is never committed: the audio may end
        inside it, and it may still gain its punctuation. ``logprob`` is the
        decode's mean log-probability, kept if it committed words.
        """
        words = split_words(hypothesis)
        previous, self._previous = self._previous, words
        if previous is None:
            return ""
        agreed = 0
        for old, new in zip(previous, words[:-1], strict=False):
            if normalise_word(old) != normalise_word(new) or not normalise_word(new):
                break
            agreed += 1
        return self._commit(words[:agreed], logprob)

    def finish(self, hypothesis: str, logprob: float | None = None) -> str:
        """Commit the rest at the end of the turn: the final decode of the tail."""
        return self._commit(split_words(hypothesis), logprob)

    def forget_hypothesis(self) -> None:
        """The audio changed under the last hypothesis (a trim): agreement starts over."""
        self._previous = None

    def trim(self, kept_from_word: int) -> None:
        """Move the first ``kept_from_word`` window words to the context (their audio is gone)."""
        self.context_words.extend(self.window_words[:kept_from_word])
        del self.window_words[:kept_from_word]
        self.forget_hypothesis()

    def _commit(self, words: list[str], logprob: float | None = None) -> str:
        if not words:
            return ""
        if logprob is not None:
            self.logprobs.append(logprob)
        if not self.window_words and not self.context_words:
            # The first words of a turn: no leading space, and a capital (a forced prefix can lose it).
            first = words[0].lstrip()
            words = [first[:1].upper() + first[1:], *words[1:]]
        self.window_words.extend(words)
        if self._previous is not None:
            self._previous = self._previous[len(words) :]
        return "".join(words)


class SpeechWindow:
    """The audio of one user turn that is still inside the recogniser's window."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._samples = 0
        self.trimmed_s = 0.0

    def append(self, samples: np.ndarray) -> None:
        self._chunks.append(samples)
        self._samples += len(samples)

    @property
    def duration_s(self) -> float:
        return self._samples / SAMPLE_RATE

    def audio(self) -> np.ndarray:
        """The window as one array (a snapshot: later appends do not change it)."""
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0].copy() if self._chunks else np.zeros(0, dtype=np.float32)

    def drop_before(self, seconds: float) -> None:
        audio = self.audio()
        cut = min(len(audio), int(seconds * SAMPLE_RATE))
        self._chunks = [audio[cut:]]
        self._samples = len(audio) - cut
        self.trimmed_s += cut / SAMPLE_RATE


def trim_window(recognizer: Recognizer, window: SpeechWindow, transcript: StreamingTranscript) -> bool:
    """Keep the window under ``MAX_WINDOW_S`` by dropping committed audio; blocking.

    Returns whether anything was trimmed.
    """
    if window.duration_s <= MAX_WINDOW_S or not transcript.window_words:
        return False
    audio = window.audio()
    ends = recognizer.word_ends(audio, transcript.prefix, transcript.context)
    limit = window.duration_s - KEEP_AFTER_TRIM_S
    keep_from = 0
    cut_at = 0.0
    for index, end in enumerate(ends):
        if end > limit:
            break
        keep_from, cut_at = index + 1, end
    if keep_from == 0:
        return False
    window.drop_before(cut_at)
    transcript.trim(keep_from)
    return True
