"""Running ``assistant bench`` as a user does, for the tests of its sub-commands."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

MACHINE_KEYS = {"cpu_model", "logical_cpus", "usable_cpus", "load_average_start", "load_average_end", "seconds"}


def run_bench(tmp_path: Path, benchmark: str, *options: str, timeout: float = 300) -> tuple[str, dict[str, Any]]:
    """``assistant bench BENCHMARK --quick --json FILE OPTIONS``: its printed table and its JSON."""
    report = tmp_path / f"{benchmark}.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "SSL_CERT_FILE"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "bench", benchmark, "--quick", "--json", str(report), *options],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(report.read_text())
    assert data["benchmark"] == benchmark and data["quick"] is True
    assert MACHINE_KEYS <= set(data["machine"]) and data["machine"]["logical_cpus"] >= 1
    assert f"wrote {report}" in result.stdout and "machine:" in result.stdout
    return result.stdout, data


def assert_distribution(summary: dict[str, Any], count: int | None = None, *, non_negative: bool = True) -> None:
    """A summary of timings: the percentiles, finite and in order (and not below zero, for durations)."""
    assert {"n", "p50", "p95", "max"} <= set(summary)
    assert all(math.isfinite(summary[key]) for key in ("p50", "p95", "max"))
    assert summary["p50"] <= summary["p95"] <= summary["max"]
    if non_negative:
        assert summary["p50"] >= 0
    if count is not None:
        assert summary["n"] == count
