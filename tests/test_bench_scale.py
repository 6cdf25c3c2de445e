"""``assistant bench scale``: a quick run end to end, with real redis-server, HAProxy and two processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.bench.report import Distribution
from assistant.bench.scale import Conversation, Outcome, ratio
from tests.support.bench import assert_distribution, run_bench


def test_a_conversation_whose_handle_was_refused_is_not_held() -> None:
    kept = Conversation(turns=3, turn_ms=[10.0, 12.0, 11.0], handle_ms=[1.0, 1.0, 2.0], resumptions=1)
    restarted = Conversation(turns=2, lost_turns=1, refused_handles=1, turn_ms=[9.0, 9.0], handle_ms=[1.0, 1.0])
    outcome = Outcome.of("x", [kept, restarted])
    assert (outcome.sessions, outcome.sessions_held, outcome.turns, outcome.lost_turns) == (2, 1, 5, 1)
    assert outcome.handle_ms is not None and outcome.handle_ms.n == 5 and outcome.resume_ms is None


def test_the_ratio_compares_like_percentiles_and_has_none_without_a_base() -> None:
    redis, sqlite = Distribution.of([2.0, 4.0]), Distribution.of([1.0, 1.0])
    assert ratio(redis, sqlite, "p50") == 2.0 and ratio(redis, sqlite, "p95") == 4.0
    assert ratio(redis, None, "p50") is None and ratio(redis, Distribution.of([0.0]), "p50") is None


@pytest.mark.slow  # redis-server, HAProxy and three server processes; about 20 s
def test_bench_scale_quick_holds_the_conversations_through_a_kill(tmp_path: Path) -> None:
    stdout, data = run_bench(tmp_path, "scale")
    assert "store's added latency per turn" in stdout
    balanced, single = data["runs"]
    assert balanced["sessions"] == single["sessions"] == data["plan"]["sessions"] == 4
    assert balanced["resumptions"] >= 1  # the killed process held conversations, and they came back
    assert balanced["sessions_held"] == balanced["sessions"]  # every handle was accepted on the other process
    assert balanced["lost_turns"] <= balanced["resumptions"]  # at most the turn in flight at the kill
    assert single["lost_turns"] == single["resumptions"] == 0
    for run in (balanced, single):
        assert run["turns"] >= run["sessions"]
        assert_distribution(run["turn_ms"], run["turns"])
        assert_distribution(run["handle_ms"], run["turns"])
    assert_distribution(balanced["resume_ms"], balanced["resumptions"])
    assert all(value is not None and value > 0 for value in data["ratios"].values())
