"""``assistant bench frontend``, ``tools`` and ``vision`` with ``--quick``: tables, JSON, a plot."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.bench import assert_distribution, run_bench

pytestmark = pytest.mark.slow

AUDIO_STAGES = {
    "mic resample 48->16 kHz",
    "echo alignment (GCC-PHAT)",
    "echo canceller (speex)",
    "jitter buffer + 24->48 kHz",
    "speaker reference",
    "client total",
    "VAD (Silero)",
}


def test_bench_frontend_times_every_stage_per_frame(tmp_path: Path) -> None:
    stdout, data = run_bench(tmp_path, "frontend", "--plot", str(tmp_path / "frontend.png"))
    assert "echo canceller (speex)" in stdout and "ERLE" in stdout
    stages = data["stages"]
    assert AUDIO_STAGES <= set(stages)
    blocks = stages["client total"]["cost_us"]["n"]
    assert blocks > 500  # 20 ms device blocks of the echo scene
    for name in AUDIO_STAGES:
        stage = stages[name]
        ten_ms = name in ("echo alignment (GCC-PHAT)", "echo canceller (speex)")
        assert stage["unavailable"] is None and stage["frame_ms"] == (10 if ten_ms else 20)
        # every frame of the scene, once (soxr still holds the last few milliseconds)
        assert 0 <= (2 * blocks if ten_ms else blocks) - stage["cost_us"]["n"] <= 2
        assert_distribution(stage["cost_us"])
        assert 0 < stage["share_of_real_time"] == stage["cost_us"]["p50"] / (stage["frame_ms"] * 1000)
    video = {name: stage for name, stage in stages.items() if stage["side"] == "video"}
    assert set(video) == {
        "sampler: not due (no decode)",
        "sampler: due, unchanged",
        "sampler: sent (resize + JPEG)",
        "change gate on a relayed JPEG",
    }
    assert all(stage["cost_us"]["n"] >= 10 and 0 <= stage["cost_us"]["p50"] <= stage["cost_us"]["p95"]
               for stage in video.values())
    echo = data["echo"]
    assert len(echo) == 4 and all("erle_db" in figures for figures in echo.values())
    assert (tmp_path / "frontend.png").read_bytes().startswith(b"\x89PNG")


def test_bench_tools_times_the_registry_mcp_and_memory(tmp_path: Path) -> None:
    stdout, data = run_bench(tmp_path, "tools")
    assert "registry call: calculate" in stdout
    calls = data["calls_us"]
    assert {"registry call: async_echo", "registry call: sync_echo", "registry call: calculate"} <= set(calls)
    assert {"MCP stdio: call echo", "memory: remember (embed + insert)", "memory: recall over 40 facts"} <= set(calls)
    assert calls["registry call: calculate"]["n"] == 100 and calls["memory: recall over 40 facts"]["n"] == 10
    for row in calls.values():
        assert_distribution(row)


def test_bench_vision_times_the_analysers_and_reads_text(tmp_path: Path) -> None:
    stdout, data = run_bench(tmp_path, "vision")
    assert "character error rate" in stdout
    assert {"text", "faces", "labels", "colours"} == set(data["analysers_ms"]) | set(data["unavailable"])
    for timing in data["analysers_ms"].values():
        assert timing["calls"] == 2 and 0 <= timing["p50"] <= timing["p95"]
    rates = data["ocr_character_error_rate"]
    assert len(rates) == 4 and all(0 <= rate <= 1 for by_tilt in rates.values() for rate in by_tilt.values())
