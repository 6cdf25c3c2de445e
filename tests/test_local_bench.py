"""``assistant bench latency --quick`` and the long-turn path of streaming recognition (real models)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.backends.local.asr import (
    MAX_WINDOW_S,
    SpeechWindow,
    StreamingTranscript,
    WhisperRecognizer,
    normalise_text,
    trim_window,
)
from assistant.backends.local.tts import PiperVoice, resolve_piper_voice
from assistant.bench.latency import evaluate, percentile
from assistant.bench.speech import spoken_prompt


def test_percentiles_and_the_benchmarks_calculator() -> None:
    assert percentile([5, 1, 3, 2, 4], 0.5) == 3 and percentile([5, 1, 3, 2, 4], 0.95) == 5
    assert evaluate("12*7") == 84 and evaluate("sqrt(144)") == 12 and evaluate("2**-1") == 0.5
    with pytest.raises(ValueError):
        evaluate("__import__('os')")


@pytest.mark.slow
def test_bench_latency_quick_prints_and_writes_figures(tmp_path: Path) -> None:
    report = tmp_path / "latency.json"
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "bench", "latency", "--quick", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=600,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "voice to voice" in result.stdout
    data = json.loads(report.read_text())
    assert len(data["turns"]) == 3
    routes = [turn["route"] for turn in data["turns"]]
    assert routes == ["get_current_time", "calculate", "chat"]
    for turn in data["turns"]:
        assert 0 < turn["voice_to_voice_ms"] < 10_000
        assert turn["stages_ms"]["end of turn"] > 0
    assert set(data["summary_ms"]["voice to voice"]) >= {"p50", "p95", "max"}


@pytest.mark.slow
def test_a_long_turn_keeps_a_bounded_window_and_its_words() -> None:
    """A 30-second monologue: committed audio leaves the window, no committed word is lost."""
    recognizer = WhisperRecognizer()
    sentences = [
        "The quick brown fox jumps over the lazy dog.",
        "My sister lives in a small house near the river.",
        "Every morning she walks her two dogs to the bakery.",
        "On Sundays we cook a large dinner for the whole family.",
        "After dinner we play cards until it gets dark outside.",
        "Then everybody goes home and the house is quiet again.",
        "In the summer the garden is full of roses and bees.",
        "We sit outside and watch the birds until the sun goes down.",
    ]
    voice = PiperVoice(resolve_piper_voice("joe"))  # the clearer speaker: this test is about lost words
    pause = np.zeros(4000, dtype=np.int16).tobytes()
    pcm = pause.join(spoken_prompt(sentence, voice) for sentence in sentences)
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    voice.close()
    assert len(audio) / 16_000 > MAX_WINDOW_S + 3

    window, transcript, fragments, longest = SpeechWindow(), StreamingTranscript(), [], 0.0
    step = 8000
    for start in range(0, len(audio), step):
        window.append(audio[start : start + step])
        fragments.append(transcript.agree(recognizer.transcribe(window.audio(), transcript.prefix, transcript.context)))
        trim_window(recognizer, window, transcript)
        longest = max(longest, window.duration_s)
    fragments.append(transcript.finish(recognizer.transcribe(window.audio(), transcript.prefix, transcript.context)))

    assert window.trimmed_s > 5 and longest <= MAX_WINDOW_S + step / 16_000
    heard = normalise_text("".join(fragments))
    expected = normalise_text(" ".join(sentences))
    missing = set(expected.split()) - set(heard.split())
    assert len(missing) <= 3, f"lost words {missing}: {heard}"
    assert "".join(fragments).strip() == transcript.text
