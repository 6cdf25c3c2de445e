"""``assistant bench hearing``: word error with and without the session's vocabulary, and the ask-again threshold.

The word error function is checked on its own; the benchmark runs for real
(tiny.en, espeak-ng and Piper) in its quick form.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from assistant.backends.local.transcript import ASK_AGAIN_BELOW
from assistant.bench.hearing import CLEAN, SEQUENCES, normalised_words, word_errors
from tests.support.bench import run_bench


def test_word_errors_count_numbers_as_digits_and_ignore_case_and_punctuation() -> None:
    assert normalised_words("Set a timer for Ten seconds!") == ["set", "a", "timer", "for", "10", "seconds"]
    assert word_errors("Set a timer for ten seconds.", "set a timer for 10 seconds") == (0, 6)
    assert word_errors("Set a timer for five seconds.", "At a time or for 5 seconds.") == (3, 6)
    assert word_errors("What's the capital of France?", "What's the capital and friends?") == (2, 5)
    assert word_errors("Hello there.", "") == (2, 2)


@pytest.mark.slow
def test_bench_hearing_reports_word_error_per_prompt_and_the_threshold(tmp_path: Path) -> None:
    stdout, data = run_bench(tmp_path, "hearing", timeout=600)
    assert "word error" in stdout and "false repeats" in stdout and "(used)" in stdout
    prompts = [row["prompt"] for row in data["vocabulary"]]
    assert prompts[0] == "reply prompt alone" and len(prompts) == 4
    assert all(0 <= row["word_error"] <= 2 for row in data["vocabulary"])
    assert len(data["confidence"]["clean"]) == 2 * len(CLEAN[::3])
    assert all(len(row["misheard"]) <= 2 * len(SEQUENCES[::3]) for row in data["vocabulary"])  # two voices
    thresholds = data["thresholds"]
    for lower, higher in itertools.pairwise(thresholds):  # a higher threshold asks more often
        assert lower["threshold"] < higher["threshold"]
        assert lower["false_repeats"] <= higher["false_repeats"] and lower["caught"] <= higher["caught"]
    [used] = [row for row in thresholds if row["threshold"] == ASK_AGAIN_BELOW]
    assert used["false_repeats"] == 0, used  # no clean request heard right is asked again
