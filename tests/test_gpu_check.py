"""The prepared GPU run (``make gpu-check``), tested as far as a machine without a GPU allows.

Its CPU half runs end to end here through ``scripts/gpu-check.sh``, on the
tests' tiny checkpoints; the report must hold real measurements. Without
CUDA it must say so and exit with 2, and ``--cuda-only`` must refuse at once.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.checkpoints import whisper_tokenizer
from tests.support.gpu_check import EXIT_FAILED, EXIT_NO_CUDA, Check, exit_status

ROOT = Path(__file__).resolve().parents[1]


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def run_check(tmp_path: Path, *options: str, env: dict[str, str] | None = None) -> tuple[int, str, dict[str, Any]]:
    """``scripts/gpu-check.sh OPTIONS`` with wheels folder holding only the tokenizer, as a GPU machine gets it."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    shutil.copy(whisper_tokenizer(), wheels / "whisper-tokenizer.json")
    out = tmp_path / "out"
    variables = {**os.environ, "PYTHON": sys.executable, "GPU_WHEELS": str(wheels), "OUT": str(out), **(env or {})}
    variables.pop("WHISPER_TOKENIZER", None)
    result = subprocess.run(
        [str(ROOT / "scripts" / "gpu-check.sh"), *options],
        capture_output=True,
        text=True,
        timeout=600,
        env=variables,
        check=False,
    )
    report = json.loads((out / "gpu-check.json").read_text())
    assert (out / "gpu-check.txt").read_text().strip() in result.stdout
    return result.returncode, result.stdout + result.stderr, report


def measured(value: Any) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@pytest.mark.slow
@pytest.mark.skipif(cuda_available(), reason="tests the run on a machine without CUDA")
def test_the_cpu_half_runs_end_to_end_and_reports_real_measurements(tmp_path: Path) -> None:
    status, output, report = run_check(tmp_path, "--size", "tiny", "--repeats", "2")
    assert status == EXIT_NO_CUDA, output
    assert "no CUDA GPU: torch" in output and "the CUDA half did not run (CUDA was expected)" in output
    assert report["exit_status"] == EXIT_NO_CUDA
    assert report["cuda"] == {"expected": True, "ran": False, "note": report["cuda"]["note"]}
    environment = report["environment"]
    assert environment["cuda"]["available"] is False and environment["missing"] == []
    assert {pin["package"] for pin in environment["pins"]} == {"torch", "transformers"}
    assert all(pin["installed"] and pin["satisfied"] is True for pin in environment["pins"])

    checks = {check["name"]: check for check in report["checks"]}
    assert list(checks) == ["engine tests", "streaming transcript", "synthesis"]
    assert all(check["device"] == "cpu" and check["status"] == "passed" for check in checks.values()), checks
    assert all(measured(check["seconds"]) for check in checks.values())
    tests = checks["engine tests"]["figures"]["tests"]
    assert tests["passed"] >= 10 and tests["failed"] == 0, checks["engine tests"]
    assert (tmp_path / "out" / "engine-tests-cpu.xml").is_file()
    streaming = checks["streaming transcript"]["figures"]
    assert streaming["dtype"] == "float32" and streaming["calls"] == 13 and streaming["words"] > 0
    assert measured(streaming["call_s_median"]) and streaming["call_s_median"] <= streaming["call_s_max"]
    assert measured(checks["synthesis"]["figures"]["audio_s"])

    bench = report["benchmark"]
    assert bench["size"] == "tiny" and bench["repeats"] == 2
    (whisper,) = bench["whisper"]["results"]
    assert measured(bench["whisper"]["parameters"]) and whisper["device"] == "cpu" and whisper["dtype"] == "float32"
    assert whisper["decode_steps"] == 8  # the end of text is suppressed: every decode takes all its steps
    assert all(measured(whisper[key]) for key in ("load_s", "encode_s", "decode_s", "decode_steps_per_s"))
    assert whisper["decode_steps_per_s"] == pytest.approx(8 / whisper["decode_s"], rel=0.01)
    (voice,) = bench["voice"]["results"]
    assert measured(bench["voice"]["parameters"]) and voice["device"] == "cpu"
    assert all(measured(voice[key]) for key in ("load_s", "first_audio_s", "audio_s", "real_time_factor"))
    assert voice["real_time_factor"] == pytest.approx(voice["first_audio_s"] / voice["audio_s"], rel=0.01)
    assert "Whisper, the tests' two-layer Whisper" in output and "steps/s" in output and "first audio s" in output


@pytest.mark.skipif(cuda_available(), reason="tests the refusal on a machine without CUDA")
def test_cuda_only_refuses_at_once_without_cuda(tmp_path: Path) -> None:
    status, output, report = run_check(tmp_path, "--cuda-only")
    assert status == EXIT_NO_CUDA, output
    assert "no CUDA GPU: torch" in output and "exit status 2: no CUDA GPU, so the CUDA half is unverified" in output
    assert report["checks"] == [] and report["benchmark"] == {} and report["cuda"]["ran"] is False


def test_cpu_only_and_cuda_only_exclude_each_other(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.gpu_check", "--cpu-only", "--cuda-only", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2 and "not allowed with argument" in result.stderr
    assert not any(tmp_path.iterdir())


def test_the_exit_status_says_what_was_verified() -> None:
    passed = [Check("synthesis", "cpu", "passed", 0.1, "")]
    failed = [*passed, Check("engine tests", "cuda", "failed", 1.0, "test_x: AssertionError")]
    assert exit_status(passed, cuda_ran=True, cpu_only=False) == 0
    assert exit_status(passed, cuda_ran=False, cpu_only=True) == 0
    assert exit_status(passed, cuda_ran=False, cpu_only=False) == EXIT_NO_CUDA
    assert exit_status(failed, cuda_ran=True, cpu_only=False) == EXIT_FAILED
    assert exit_status(failed, cuda_ran=False, cpu_only=False) == EXIT_FAILED
