"""``assistant bench latency --quick``: through the local stack and through the Gemini relay (real models)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.bench import assert_distribution, run_bench

pytestmark = pytest.mark.slow


def test_bench_latency_local_prints_and_writes_figures(tmp_path: Path) -> None:
    stdout, data = run_bench(tmp_path, "latency", "--plot", str(tmp_path / "latency.png"))
    assert "voice to voice" in stdout and "warm-up turn (not counted)" in stdout
    assert data["backend"] == "local" and data["seed"] == 1
    # the server's own tools answered, found in its real registry
    assert {"get_current_time", "calculate", "set_timer", "remember"} <= set(data["settings"]["server_tools"])
    assert sorted(turn["route"] for turn in data["turns"]) == ["calculate", "chat", "get_current_time"]
    for turn in data["turns"]:
        assert turn["voice_to_voice_ms"] > 0 and turn["transport_ms"] >= 0
        assert {"end of turn", "final transcript", "first token", "first audio sent"} <= set(turn["stages_ms"])
        assert (turn["tool_ms"] is None) == (turn["route"] == "chat")
    summary = data["summary_ms"]
    assert set(summary) == {"end of turn", "final transcript", "first token", "first audio sent", "transport",
                            "voice to voice"}
    for name, row in summary.items():
        assert_distribution(row, count=3, non_negative=name in ("transport", "voice to voice"))
    components = {model["component"] for model in data["models"]}
    assert {"speech recognition", "Piper voice", "voice activity detection"} <= components
    assert all(model["bytes"] > 1_000_000 for model in data["models"])
    assert data["warm_up"]["prompt"] == "Hello there."
    # --quick speaks no paused prompts; every turn says which rule ended it
    assert sum(data["ended_by"].values()) == 3 and data["paused_prompts"] == data["false_cut_ins"] == 0
    assert {turn["end_rule"] for turn in data["turns"]} <= {"words+voice", "words", "silence"}
    assert (tmp_path / "latency.png").read_bytes().startswith(b"\x89PNG")


def test_bench_latency_through_the_gemini_relay(tmp_path: Path) -> None:
    stdout, data = run_bench(tmp_path, "latency", "--backend", "gemini", "--seed", "5")
    assert "speech at upstream" in stdout
    assert data["backend"] == "gemini" and data["seed"] == 5 and data["models"] == []
    assert data["settings"]["upstream"].startswith("assistant.bench.upstream.EchoUpstream")
    assert len(data["turns"]) == 3 and {turn["route"] for turn in data["turns"]} == {"echo"}
    for turn in data["turns"]:
        stages = turn["stages_ms"]
        assert set(stages) == {"speech at upstream", "end of turn", "first audio sent"}
        # the stand-in answers only after its silence wait, counted in audio time
        assert stages["speech at upstream"] < stages["end of turn"] <= stages["first audio sent"]
        assert turn["voice_to_voice_ms"] >= stages["first audio sent"]
    for row in data["summary_ms"].values():
        assert_distribution(row, count=3)
