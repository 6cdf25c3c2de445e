"""``assistant bench wakeword``: false accepts per hour and misses of each packaged wake word model.

What ``assistant talk --wake-word`` relies on, measured on speech made at
run time with the voices the project already speaks with (espeak-ng in
several accents and speeds, and the packaged Piper voice when it is
installed), optionally under white noise at a stated signal-to-noise ratio:

- false accepts: about ten minutes of ordinary speech without any wake word
  (the Thirukkural's English meanings and the router's evaluation
  phrasings, in a seeded order, with seeded pauses between sentences),
  streamed in 20 ms blocks through every model at once, as one long
  microphone stream. Each detection is a false accept; the figure is per
  hour of audio streamed (pauses included, as a microphone would be).
- misses: each model's own phrase said 20 times (alone, and run into a
  request: "Okay Nabu, what time is it?"), each in a fresh stream with a
  second of quiet either side; a saying with no detection is a miss.

Synthesis is the cost, so each sentence is synthesised once and fed to
every model, on two worker threads a few sentences ahead of the detectors;
nothing is kept once it has been streamed. Detection cost is reported as
CPU time per hour of audio. A run repeats: the same seed gives the same
sentences, voices, pauses and noise.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import cycle
from typing import TYPE_CHECKING

import numpy as np

from assistant.bench.report import BenchUnavailable, Machine, ModelInfo, describe_models, format_table, publish
from assistant.bench.speech import SAMPLE_RATE, spoken_prompt

if TYPE_CHECKING:
    from assistant.backends.local.tts import Synthesizer
    from audio.wakeword import MicroWakeWordDetector

NEGATIVE_MINUTES = 10.0
QUICK_NEGATIVE_MINUTES = 1.0
SAYINGS = 20
QUICK_SAYINGS = 5
PAUSE_S = (0.3, 1.2)  # seeded quiet before each sentence of the negative stream
PAD_S = 1.0  # quiet either side of each spoken wake word
BLOCK_BYTES = 640  # 20 ms at 16 kHz, as the talk app's microphone delivers
SYNTH_WORKERS = 2
SYNTH_AHEAD = 6  # sentences synthesised ahead of the detectors
# espeak-ng voices (accent, words per minute): the accents a packaged model was trained on and some it was not.
ESPEAK_SPEAKERS = (
    ("en-us", 160),
    ("en-gb", 140),
    ("en-us", 200),
    ("en-gb-x-rp", 175),
    ("en-029", 150),
    ("en-gb-scotland", 185),
)
REQUESTS = (
    "what time is it?",
    "set a timer for five minutes.",
    "what's twelve times seven?",
    "remember that my car is on level three.",
    "what can you do?",
)


@dataclass(frozen=True, slots=True)
class Speaker:
    name: str
    voice: Synthesizer


@dataclass(frozen=True, slots=True)
class FalseAccept:
    """Where a model fired in the speech without its word."""

    at_s: float  # into the stream
    text: str
    voice: str


@dataclass
class ModelScore:
    """One model's figures over the run."""

    name: str
    phrase: str
    cutoff: float
    false_accepts: list[FalseAccept] = field(default_factory=list)
    sayings: list[tuple[str, str, bool]] = field(default_factory=list)  # (text, voice, detected)
    cpu_s: float = 0.0  # spent detecting, over both streams

    @property
    def misses(self) -> int:
        return sum(not detected for _, _, detected in self.sayings)


def poisson_upper(events: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound on a Poisson mean after ``events`` events (about 3.0 for none).

    Ten minutes without a false accept does not mean none per hour: it means
    fewer than about 16 per hour at 95% confidence, and the table says so.
    """

    def at_most(mean: float) -> float:
        return sum(math.exp(-mean) * mean**i / math.factorial(i) for i in range(events + 1))

    low, high = 0.0, 10.0 * (events + 1)
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if at_most(middle) > 1 - confidence else (low, middle)
    return high


def speakers() -> list[Speaker]:
    """espeak-ng in several accents and speeds, and the packaged Piper voice when it is installed."""
    from assistant.backends.local.models import ModelMissing
    from assistant.backends.local.tts import DEFAULT_PIPER_VOICE, EspeakVoice, SpeechUnavailable, load_voices

    try:
        found = [Speaker(f"espeak {accent} {wpm}", EspeakVoice(accent, wpm)) for accent, wpm in ESPEAK_SPEAKERS]
    except SpeechUnavailable as exc:
        raise BenchUnavailable(str(exc)) from None
    try:
        piper = load_voices(DEFAULT_PIPER_VOICE).default
    except (ModelMissing, SpeechUnavailable, ModuleNotFoundError):
        return found
    if not isinstance(piper, EspeakVoice):
        found.append(Speaker(f"piper {piper.name}", piper))
    return found


def negative_sentences(rng: np.random.Generator, phrases: Iterable[str]) -> list[str]:
    """Text the project carries that says no wake word: the Thirukkural's meanings and routing phrasings."""
    from assistant.bench.routing_set import PHRASINGS
    from assistant.knowledge.store import KnowledgeError
    from assistant.knowledge.thirukkural import load_kurals

    try:
        sentences = [kural.meaning for kural in load_kurals()]
    except KnowledgeError:  # the knowledge extra is not installed: the phrasings alone
        sentences = []
    sentences += [text for text, _ in PHRASINGS]
    names = {word.lower() for phrase in phrases for word in phrase.split() if word.lower() not in {"hey", "okay"}}
    clean = [text for text in sentences if not names & set(re.findall(r"[a-z]+", text.lower()))]
    return [clean[i] for i in rng.permutation(len(clean))]


def wake_sayings(phrase: str, count: int) -> list[str]:
    """The phrase alone and run into a request, alternately."""
    return [phrase if i % 2 == 0 else f"{phrase}, {REQUESTS[i // 2 % len(REQUESTS)]}" for i in range(count)]


def add_noise(audio: np.ndarray, speech: np.ndarray, snr_db: float | None, rng: np.random.Generator) -> np.ndarray:
    """``audio`` with white noise ``snr_db`` below the level of ``speech`` (its voiced part); None: clean."""
    if snr_db is None:
        return audio
    speech_rms = float(np.sqrt(np.mean(speech.astype(np.float64) ** 2)))
    noise = rng.normal(0.0, speech_rms / 10 ** (snr_db / 20), audio.size)
    return np.clip(audio + noise, -32768, 32767).astype("<i2")


def synthesised(texts: Iterable[tuple[str, Speaker]]) -> Iterator[tuple[str, Speaker, np.ndarray]]:
    """Each text spoken (16 kHz int16, trimmed), in order, synthesised a few ahead on worker threads."""
    pending: list[tuple[str, Speaker, Future[bytes]]] = []
    with ThreadPoolExecutor(SYNTH_WORKERS, thread_name_prefix="bench-speech") as pool:
        iterator = iter(texts)
        try:
            while True:
                while len(pending) < SYNTH_AHEAD and (item := next(iterator, None)) is not None:
                    text, speaker = item
                    pending.append((text, speaker, pool.submit(spoken_prompt, text, speaker.voice)))
                if not pending:
                    return
                text, speaker, future = pending.pop(0)
                yield text, speaker, np.frombuffer(future.result(), dtype="<i2")
        finally:
            for _, _, future in pending:
                future.cancel()


def stream(detector: MicroWakeWordDetector, audio: np.ndarray) -> list[int]:
    """Feed ``audio`` in microphone blocks; the index of each block in which the word was detected."""
    pcm = audio.tobytes()
    return [i // BLOCK_BYTES for i in range(0, len(pcm), BLOCK_BYTES) if detector.detect(pcm[i : i + BLOCK_BYTES])]


def _timed_stream(score: ModelScore, detector: MicroWakeWordDetector, audio: np.ndarray) -> list[int]:
    started = time.process_time()
    blocks = stream(detector, audio)
    score.cpu_s += time.process_time() - started
    return blocks


@dataclass
class Run:
    """The figures of one run, for the table and the JSON."""

    scores: list[ModelScore]
    speech_s: float = 0.0  # voiced sentences of the negative stream
    audio_s: float = 0.0  # all of it, pauses included
    sentences: int = 0
    wake_audio_s: float = 0.0
    seconds: float = 0.0  # the whole measurement, synthesis included
    voices: list[str] = field(default_factory=list)


def measure(
    detectors: Sequence[MicroWakeWordDetector],
    voices: Sequence[Speaker],
    minutes: float,
    sayings: int,
    snr_db: float | None,
    rng: np.random.Generator,
) -> Run:
    """Stream the speech without the words through every model, then each model's own phrase."""
    run = Run([ModelScore(d.name, d.phrase, d.cutoff) for d in detectors], voices=[v.name for v in voices])
    started = time.perf_counter()
    texts = negative_sentences(rng, [d.phrase for d in detectors])
    voice_of = cycle(voices)
    for text, speaker, speech in synthesised((text, next(voice_of)) for text in texts):
        pause = np.zeros(int(rng.uniform(*PAUSE_S) * SAMPLE_RATE), dtype="<i2")
        audio = add_noise(np.concatenate([pause, speech]), speech, snr_db, rng)
        for score, detector in zip(run.scores, detectors, strict=True):
            for block in _timed_stream(score, detector, audio):
                score.false_accepts.append(FalseAccept(run.audio_s + block * 0.02, text, speaker.name))
        run.audio_s += audio.size / SAMPLE_RATE
        run.speech_s += speech.size / SAMPLE_RATE
        run.sentences += 1
        if run.speech_s >= minutes * 60:
            break
    else:
        print(f"assistant bench wakeword: only {run.speech_s:.0f} s of text to speak", file=sys.stderr)
    pad = np.zeros(int(PAD_S * SAMPLE_RATE), dtype="<i2")
    for score, detector in zip(run.scores, detectors, strict=True):
        items = [(text, voices[i % len(voices)]) for i, text in enumerate(wake_sayings(detector.phrase, sayings))]
        for text, speaker, speech in synthesised(items):
            detector.reset()
            audio = add_noise(np.concatenate([pad, speech, pad]), speech, snr_db, rng)
            score.sayings.append((text, speaker.name, bool(_timed_stream(score, detector, audio))))
            run.wake_audio_s += audio.size / SAMPLE_RATE
    run.seconds = time.perf_counter() - started
    return run


def load_detectors(names: Sequence[str] | None) -> list[MicroWakeWordDetector]:
    try:
        from audio.wakeword import MicroWakeWordDetector, WakeWordUnavailable, packaged_wake_words

        return [MicroWakeWordDetector(name) for name in names or packaged_wake_words()]
    except WakeWordUnavailable as exc:
        raise BenchUnavailable(str(exc)) from None


def report_of(run: Run, args: argparse.Namespace, machine: Machine) -> dict[str, object]:
    hours = run.audio_s / 3600
    return {
        "benchmark": "wakeword",
        "quick": args.quick,
        "seed": args.seed,
        "machine": machine.to_json(),
        "snr_db": args.snr,
        "voices": run.voices,
        "negative": {"sentences": run.sentences, "speech_s": run.speech_s, "audio_s": run.audio_s},
        "seconds": run.seconds,
        "models": [
            {
                "name": score.name,
                "phrase": score.phrase,
                "cutoff": score.cutoff,
                "false_accepts": len(score.false_accepts),
                "false_accepts_per_hour": len(score.false_accepts) / hours if hours else None,
                "false_accepts_per_hour_95_upper": poisson_upper(len(score.false_accepts)) / hours if hours else None,
                "sayings": len(score.sayings),
                "misses": score.misses,
                "detect_cpu_s_per_audio_hour": score.cpu_s / (run.audio_s + run.wake_audio_s) * 3600,
                "false_accept_where": [vars(accept) for accept in score.false_accepts],
                "missed": [{"text": t, "voice": v} for t, v, detected in score.sayings if not detected],
            }
            for score in run.scores
        ],
    }


def run(args: argparse.Namespace) -> int:
    """Measure every packaged model (or those named), print the table, write JSON."""
    from assistant.bench.report import seed_everything
    from audio.wakeword import WAKE_WORD_PACKAGE

    rng = seed_everything(args.seed)
    minutes = args.minutes or (QUICK_NEGATIVE_MINUTES if args.quick else NEGATIVE_MINUTES)
    sayings = args.sayings or (QUICK_SAYINGS if args.quick else SAYINGS)
    machine = Machine.now()
    try:
        detectors = load_detectors(args.models)
        voices = speakers()
    except BenchUnavailable as exc:
        print(f"assistant bench wakeword: {exc}", file=sys.stderr)
        return 2
    result = measure(detectors, voices, minutes, sayings, args.snr, rng)
    machine.finish()
    noise = f"white noise at {args.snr:g} dB SNR" if args.snr is not None else "no noise"
    print(
        f"assistant bench wakeword   ({result.speech_s / 60:.1f} min of speech without a wake word in "
        f"{result.audio_s / 60:.1f} min of audio, {result.sentences} sentences; {sayings} sayings of each "
        f"word; {len(voices)} voices; {noise})\n"
    )
    rows = [
        [
            score.name,
            score.phrase,
            score.cutoff,
            len(score.false_accepts),
            len(score.false_accepts) / (result.audio_s / 3600),
            poisson_upper(len(score.false_accepts)) / (result.audio_s / 3600),
            f"{score.misses}/{len(score.sayings)}",
            score.cpu_s / (result.audio_s + result.wake_audio_s) * 3600,
        ]
        for score in result.scores
    ]
    headers = ["model", "phrase", "cutoff", "false accepts", "per hour", "95% at most", "misses", "CPU s/audio h"]
    print(format_table(headers, rows))
    for score in result.scores:
        for accept in score.false_accepts:
            print(f"  {score.name} fired at {accept.at_s:.1f} s ({accept.voice}): {accept.text!r}")
        missed = sorted({voice for _, voice, detected in score.sayings if not detected})
        if missed:
            print(f"  {score.name} missed with: {', '.join(missed)}")
    print(f"\nmeasured in {result.seconds:.1f} s, synthesis included; voices: {', '.join(result.voices)}")
    print(machine.describe())
    models = [ModelInfo.of("wake word", f"{d.name} ({WAKE_WORD_PACKAGE})", d.model_path) for d in detectors]
    print(describe_models(models))
    publish(args, report_of(result, args, machine))
    return 0
