"""``assistant bench hearing``: word error of the offline recogniser, and when to ask the user to repeat.

Requests are spoken at run time by two voices (espeak-ng and the packaged
Piper voice) and decoded by Whisper as a session decodes them: a partial
decode every ``PARTIAL_STEP_S`` of audio once there is
``MIN_PARTIAL_WINDOW_S``, words committed when two decodes agree, a final
decode of the tail (``StreamingTranscript``). Two questions:

- **Vocabulary.** Does a prompt with the session's vocabulary lower the
  word error on requests that follow? The vocabulary is what
  ``vocabulary_prompt`` makes of a conversation where the user asked the
  assistant to remember two names (what a session uses); with the words
  that ask for the built-in tools after them, and with the Thiruvalluvar
  persona's terms before them (both rejected). Each request is decoded after a reply, with the
  reply prompt alone (``reply_prompt``) and with each vocabulary in front
  of it. Word error
  counts numbers as digits, case and punctuation not at all.
- **Confidence.** The mean log-probability of the decodes whose words a turn
  committed (``StreamingTranscript.confidence``) on clean requests (the
  latency bench's prompts and the issue's rows) against the same requests
  garbled: white noise at 0 and -5 dB SNR, played backwards, and two
  requests spoken at once. For each threshold: how many clean requests
  heard right would be asked again (a false "please repeat"), how many
  clean ones misheard would, and how many garbled requests that were
  misheard it catches.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from assistant.backends.local.asr import SAMPLE_RATE, Recognizer, hear
from assistant.backends.local.transcript import (
    ASK_AGAIN_BELOW,
    MIN_PARTIAL_WINDOW_S,
    StreamingTranscript,
    recogniser_prompt,
    reply_prompt,
    vocabulary_prompt,
)
from assistant.bench.report import Machine, ModelInfo, describe_models, format_table, publish, seed_everything

if TYPE_CHECKING:
    from assistant.backends.local.tts import Synthesizer

PARTIAL_STEP_S = 0.5  # as the session: new audio between partial decodes
THRESHOLDS = (-1.5, -1.4, -1.3, -1.2, -1.1, -1.0, -0.9, -0.8)
REMEMBERED = ("Remember that my sister's name is Priya.", "Remember that my brother's name is Arjun.")
TOOL_WORDS = "timer, reminder, remember, calculate, camera, time."  # the words that ask for the built-in tools

# Said after a reply; the session's vocabulary (two remembered names, a persona) appears in some requests only,
# so a vocabulary that pulls other requests towards itself shows up as well.
SEQUENCES: tuple[tuple[str, str], ...] = (
    ("Your sister's name is Priya.", "What is my sister's name?"),
    ("I'll remember that.", "Remind me to call Priya at six."),
    ("7 times 8 is 56.", "Set a timer for five seconds."),
    ("A timer is set for 10 seconds.", "Is Arjun coming to dinner tonight?"),
    ("It's 3:15 PM.", "Remember that my brother's name is Arjun."),
    ("I'll remember that.", "Send Priya a message saying happy birthday."),
    ("Your timer is done.", "What's twelve times seven?"),
    ("Kural 305. I can read it in Tamil if you like.", "Read it in Tamil."),
    ("I can't look that up offline.", "Tell me a kural by Thiruvalluvar."),
    ("12 times 7 is 84.", "What's the capital of France?"),
    ("Hello! How can I help?", "What can you do?"),
    ("I can tell the time and set timers.", "What does the sign in front of the camera say?"),
    ("Your brother's name is Arjun.", "What time is it?"),
    ("It's Wednesday.", "Remind me to water the plants at seven."),
    ("I'll remember that.", "What did I tell you about Arjun?"),
)
CLEAN: tuple[str, ...] = (
    "Hello there.",
    "What time is it?",
    "What's twelve times seven?",
    "Tell me a joke.",
    "Set a timer for five minutes.",
    "How are you today?",
    "What's the date today?",
    "Remember that my sister's birthday is in May.",
    "Why is the sky blue?",
    "What can you do?",
    "Remember that my sister's name is Priya.",
    "What is my sister's name?",
    "What's the capital of France?",
    "Set a timer for ten seconds.",
    "What does the sign in front of the camera say?",
)
NUMBERS = {
    word: str(value)
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
}
_WORDS = re.compile(r"[a-z0-9']+")


def normalised_words(text: str) -> list[str]:
    """Lower case, no punctuation, numbers as digits (Whisper writes "5 seconds" and "five seconds")."""
    return [NUMBERS.get(word, word) for word in _WORDS.findall(text.lower().replace("-", " "))]


def word_errors(said: str, heard: str) -> tuple[int, int]:
    """Edit distance in words between what was said and what was heard, and the words said."""
    reference, hypothesis = normalised_words(said), normalised_words(heard)
    row = list(range(len(hypothesis) + 1))
    for index, word in enumerate(reference, 1):
        previous, row[0] = row[0], index
        for column, other in enumerate(hypothesis, 1):
            previous, row[column] = row[column], min(row[column] + 1, row[column - 1] + 1, previous + (word != other))
    return row[-1], len(reference)


@dataclass(frozen=True, slots=True)
class Decoded:
    voice: str
    said: str
    heard: str
    confidence: float | None
    errors: int
    words: int


def decode_as_a_session(recognizer: Recognizer, audio: np.ndarray, prompt: str = "") -> tuple[str, float | None]:
    """The transcript and its confidence as a session gets them: partial decodes, agreement, a final tail."""
    transcript = StreamingTranscript(prompt=prompt)
    step = int(PARTIAL_STEP_S * SAMPLE_RATE)
    for end in range(max(step, int(MIN_PARTIAL_WINDOW_S * SAMPLE_RATE)), len(audio), step):
        partial = hear(recognizer, audio[:end], transcript.prefix, transcript.context)
        transcript.agree(partial.text, partial.logprob)
    final = hear(recognizer, audio, transcript.prefix, transcript.context)
    transcript.finish(final.text, final.logprob)
    return transcript.text, transcript.confidence


def decode(recognizer: Recognizer, voice: str, said: str, audio: np.ndarray, prompt: str = "") -> Decoded:
    heard, logprob = decode_as_a_session(recognizer, audio, prompt)
    return Decoded(voice, said, heard, logprob, *word_errors(said, heard))


def word_error_rate(decoded: Sequence[Decoded]) -> float:
    words = sum(d.words for d in decoded)
    return sum(d.errors for d in decoded) / words if words else 0.0


def with_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``audio`` with white noise ``snr_db`` below its power."""
    power = float(np.mean(audio**2))
    noise = rng.standard_normal(len(audio)).astype(np.float32) * np.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(audio + noise, -1.0, 1.0).astype(np.float32)


def overlapped(audio: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Two requests spoken at once, at the same level."""
    length = max(len(audio), len(other))
    mixed = np.zeros(length, dtype=np.float32)
    mixed[: len(audio)] += audio
    mixed[: len(other)] += other
    return np.clip(mixed, -1.0, 1.0)


def garblings(rng: np.random.Generator) -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """Ways to spoil a request, each given the request and another one."""
    return {
        "noise 0 dB": lambda audio, other: with_noise(audio, 0.0, rng),
        "noise -5 dB": lambda audio, other: with_noise(audio, -5.0, rng),
        "backwards": lambda audio, other: audio[::-1].copy(),
        "two at once": overlapped,
    }


class Speakers:
    """The two voices, speaking a text as 16 kHz float audio (cached)."""

    def __init__(self) -> None:
        from assistant.backends.local.tts import EspeakVoice, PiperVoice, resolve_piper_voice

        self.voices: dict[str, Synthesizer] = {
            "espeak-ng": EspeakVoice(words_per_minute=160),
            "piper joe": PiperVoice(resolve_piper_voice("joe")),
        }
        self._spoken: dict[tuple[str, str], np.ndarray] = {}

    def say(self, voice: str, text: str) -> np.ndarray:
        from assistant.bench.speech import spoken_prompt

        key = (voice, text)
        if key not in self._spoken:
            pcm = spoken_prompt(text, self.voices[voice])
            self._spoken[key] = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
        return self._spoken[key]

    def each(self, texts: Sequence[str]) -> Iterator[tuple[str, str, np.ndarray]]:
        for voice in self.voices:
            for text in texts:
                yield voice, text, self.say(voice, text)


def vocabularies() -> dict[str, str]:
    """The vocabularies measured: the user's names (what a session uses), with the tools' words, with a persona's."""
    from assistant.personas import load_persona

    names = vocabulary_prompt(REMEMBERED)
    persona = vocabulary_prompt([load_persona("thiruvalluvar").instruction]).removesuffix(".")
    return {
        "the user's names (used)": names,
        "the user's names, the tools' words (rejected)": f"{names} {TOOL_WORDS}",
        "a persona's terms, the user's names (rejected)": f"{persona}, {names}",
    }


def vocabulary_rows(recognizer: Recognizer, speakers: Speakers, sequences: Sequence[tuple[str, str]]) -> list[dict]:
    """Word error after each reply, with the reply prompt alone and with each vocabulary in front of it."""
    prompts: dict[str, Callable[[str], str]] = {"reply prompt alone": reply_prompt}
    for name, words in vocabularies().items():
        prompts[f"vocabulary: {name}"] = functools.partial(recogniser_prompt, words)
    rows = []
    for label, prompt_for in prompts.items():
        decoded = [
            decode(recognizer, voice, said, speakers.say(voice, said), prompt_for(reply))
            for voice in speakers.voices
            for reply, said in sequences
        ]
        rows.append(
            {
                "prompt": label,
                "vocabulary": prompt_for(""),
                "word_error": word_error_rate(decoded),
                "by_voice": {v: word_error_rate([d for d in decoded if d.voice == v]) for v in speakers.voices},
                "misheard": [{"voice": d.voice, "said": d.said, "heard": d.heard} for d in decoded if d.errors],
            }
        )
    return rows


def confidence_rows(
    recognizer: Recognizer, speakers: Speakers, clean: Sequence[str], rng: np.random.Generator
) -> tuple[list[Decoded], dict[str, list[Decoded]]]:
    """Each clean request decoded as it is and garbled in each way (no prompt: a fresh turn)."""
    clean_decoded = [decode(recognizer, voice, text, audio) for voice, text, audio in speakers.each(clean)]
    garbled: dict[str, list[Decoded]] = {}
    for name, garble in garblings(rng).items():
        garbled[name] = []
        for index, (voice, text, audio) in enumerate(speakers.each(clean)):
            other = speakers.say(voice, clean[(index + 1) % len(clean)])
            garbled[name].append(decode(recognizer, voice, text, garble(audio, other)))
    return clean_decoded, garbled


def asks_again(decoded: Decoded, threshold: float) -> bool:
    """Whether a turn this sure of itself would be asked again (an empty one is a noise, not asked)."""
    return bool(decoded.heard.strip()) and decoded.confidence is not None and decoded.confidence < threshold


def threshold_rows(clean: Sequence[Decoded], garbled: Sequence[Decoded]) -> list[dict]:
    """Per threshold: false repeats on clean requests, catches among garbled ones that were misheard."""
    misheard = [d for d in garbled if d.errors and d.heard.strip()]
    heard_right = [d for d in garbled if not d.errors]
    clean_right = [d for d in clean if not d.errors]
    clean_misheard = [d for d in clean if d.errors]
    rows = []
    for threshold in THRESHOLDS:
        rows.append(
            {
                "threshold": threshold,
                "false_repeats": sum(asks_again(d, threshold) for d in clean_right),
                "clean": len(clean_right),
                "clean_misheard_asked": sum(asks_again(d, threshold) for d in clean_misheard),
                "clean_misheard": len(clean_misheard),
                "caught": sum(asks_again(d, threshold) for d in misheard),
                "misheard": len(misheard),
                "lost": sum(asks_again(d, threshold) for d in heard_right),
                "heard_right": len(heard_right),
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    from assistant.backends.local import LocalConfig
    from assistant.backends.local.asr import DEFAULT_ASR_MODEL, WhisperRecognizer, resolve_whisper_model
    from assistant.backends.local.models import ModelMissing
    from assistant.backends.local.tts import SpeechUnavailable

    rng = seed_everything(args.seed)
    try:
        recognizer = WhisperRecognizer(threads=LocalConfig().decode_threads)  # as the server decodes
        speakers = Speakers()
    except (ModelMissing, SpeechUnavailable) as exc:
        print(f"assistant bench hearing: {exc}", file=sys.stderr)
        return 2
    machine = Machine.now()
    started = time.perf_counter()
    sequences = SEQUENCES[::3] if args.quick else SEQUENCES
    clean_texts = CLEAN[::3] if args.quick else CLEAN
    vocabulary = vocabulary_rows(recognizer, speakers, sequences)
    clean, garbled = confidence_rows(recognizer, speakers, clean_texts, rng)
    every_garbled = [d for decoded in garbled.values() for d in decoded]
    thresholds = threshold_rows(clean, every_garbled)
    seconds = time.perf_counter() - started
    machine.finish()

    print(f"assistant bench hearing   (Whisper {recognizer.name}, two voices, decoded as a session decodes)\n")
    print(f"word error on {len(sequences)} requests after a reply, per voice\n")
    voices = list(speakers.voices)
    print(
        format_table(
            ["prompt", "word error", *voices],
            [[r["prompt"], f"{r['word_error']:.1%}", *(f"{r['by_voice'][v]:.1%}" for v in voices)] for r in vocabulary],
        )
    )
    print("\nconfidence: mean log-probability of a turn's decodes (min / median / max)\n")
    sets = {"clean": clean, **garbled}
    print(
        format_table(
            ["audio", "requests", "word error", "min", "median", "max"],
            [[name, str(len(ds)), f"{word_error_rate(ds):.1%}", *spread(ds)] for name, ds in sets.items()],
        )
    )
    print("\nasking again below a threshold: false repeats (clean requests heard right), mishearings caught\n")
    print(
        format_table(
            ["threshold", "false repeats", "clean misheard, asked", "garbled misheard, caught", "garbled right, asked"],
            [
                [
                    f"{r['threshold']:.1f}" + (" (used)" if r["threshold"] == ASK_AGAIN_BELOW else ""),
                    f"{r['false_repeats']}/{r['clean']}",
                    f"{r['clean_misheard_asked']}/{r['clean_misheard']}",
                    f"{r['caught']}/{r['misheard']}",
                    f"{r['lost']}/{r['heard_right']}",
                ]
                for r in thresholds
            ],
        )
    )
    print(f"\n({seconds:.0f} s)")
    print(machine.describe())
    print(
        describe_models(
            [ModelInfo.of("speech recognition", DEFAULT_ASR_MODEL, resolve_whisper_model(DEFAULT_ASR_MODEL))]
        )
    )
    report = {
        "benchmark": "hearing",
        "quick": args.quick,
        "machine": machine.to_json(),
        "vocabulary": vocabulary,
        "confidence": {
            name: [{"voice": d.voice, "said": d.said, "heard": d.heard, "confidence": d.confidence} for d in ds]
            for name, ds in sets.items()
        },
        "thresholds": thresholds,
    }
    publish(args, report)
    return 0


def spread(decoded: Sequence[Decoded]) -> list[str]:
    values = sorted(d.confidence for d in decoded if d.confidence is not None)
    if not values:
        return ["-", "-", "-"]
    return [f"{values[0]:.2f}", f"{values[len(values) // 2]:.2f}", f"{values[-1]:.2f}"]
