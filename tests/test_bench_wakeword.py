"""``assistant bench wakeword``: its speech never says a wake word, its counts, and a quick run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from assistant.bench.wakeword import (
    add_noise,
    negative_sentences,
    poisson_upper,
    stream,
    wake_sayings,
)
from tests.support.bench import run_bench

PHRASES = ("Okay Nabu", "Hey Jarvis", "Alexa", "Hey Mycroft")


def test_the_speech_without_wake_words_says_none_of_them_and_is_long_enough() -> None:
    sentences = negative_sentences(np.random.default_rng(1), PHRASES)
    words = {word for text in sentences for word in re.findall(r"[a-z]+", text.lower())}
    assert not {"nabu", "jarvis", "alexa", "mycroft"} & words
    assert "okay" in words or "hey" in words or len(sentences) > 1000, "near misses stay in"
    assert sum(len(text.split()) for text in sentences) / 160 > 30, "more than half an hour at 160 words a minute"
    assert sentences == negative_sentences(np.random.default_rng(1), PHRASES), "a seed repeats the order"


def test_wake_sayings_alternate_the_word_alone_and_run_into_a_request() -> None:
    sayings = wake_sayings("Okay Nabu", 20)
    assert len(sayings) == 20 and sayings[0] == "Okay Nabu" and sayings[1].startswith("Okay Nabu, ")
    assert sum(text == "Okay Nabu" for text in sayings) == 10


def test_noise_is_added_at_the_stated_signal_to_noise_ratio() -> None:
    rng = np.random.default_rng(0)
    speech = (np.sin(np.arange(16_000) / 5) * 8000).astype("<i2")
    audio = np.concatenate([np.zeros(16_000, dtype="<i2"), speech])
    noisy = add_noise(audio, speech, 10.0, rng)
    noise = noisy.astype(np.float64) - audio
    snr = 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(noise**2))
    assert snr == pytest.approx(10.0, abs=0.2)
    assert add_noise(audio, speech, None, rng) is audio


def test_poisson_upper_bound() -> None:
    assert poisson_upper(0) == pytest.approx(3.00, abs=0.01)  # the "rule of three"
    assert poisson_upper(1) == pytest.approx(4.74, abs=0.01)
    assert poisson_upper(10) == pytest.approx(16.96, abs=0.02)


@pytest.mark.slow
def test_a_wake_word_inside_the_stream_counts_once() -> None:
    from assistant.backends.local.tts import EspeakVoice
    from assistant.bench.speech import spoken_prompt
    from audio.wakeword import MicroWakeWordDetector

    voice = EspeakVoice("en-us", 160)
    detector = MicroWakeWordDetector("alexa")
    said = [spoken_prompt(text, voice) for text in ("The sky was grey all day.", "Alexa", "Then it rained.")]
    pause = bytes(16_000)  # half a second
    audio = np.frombuffer(pause + pause.join(said) + pause, dtype="<i2")
    blocks = stream(detector, audio)
    assert len(blocks) == 1
    word_starts = (2 * len(pause) + len(said[0])) / 32_000
    word_ends = word_starts + len(said[1]) / 32_000
    assert word_starts < blocks[0] * 0.02 < word_ends + 0.5, "detected as the word ends, not in the sentences"


@pytest.mark.slow
def test_bench_wakeword_quick_reports_false_accepts_and_misses_per_model(tmp_path: Path) -> None:
    stdout, data = run_bench(tmp_path, "wakeword", "--models", "okay_nabu,alexa", "--minutes", "0.5")
    assert "false accepts" in stdout and "misses" in stdout
    assert data["negative"]["speech_s"] >= 30 and data["negative"]["audio_s"] > data["negative"]["speech_s"]
    assert len(data["voices"]) >= 6
    models = {model["name"]: model for model in data["models"]}
    assert set(models) == {"okay_nabu", "alexa"}
    for model in models.values():
        assert model["sayings"] == 5 and 0 <= model["misses"] <= 5
        assert model["false_accepts"] == len(model["false_accept_where"])
        hours = data["negative"]["audio_s"] / 3600
        assert model["false_accepts_per_hour"] == pytest.approx(model["false_accepts"] / hours)
        assert model["false_accepts_per_hour_95_upper"] > model["false_accepts_per_hour"]
        assert 0 < model["detect_cpu_s_per_audio_hour"] < 360, "under a tenth of real time"
    assert models["okay_nabu"]["misses"] <= 1, "espeak's Okay Nabu is heard (0/20 missed in a full run)"
