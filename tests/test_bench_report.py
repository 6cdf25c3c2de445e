"""What every benchmark report carries: percentiles, the machine, model sizes, tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.bench.report import (
    Distribution,
    Machine,
    ModelInfo,
    disk_size,
    format_table,
    percentile,
    seed_everything,
    write_json,
)


def test_nearest_rank_percentiles_never_invent_a_value() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 0.5) == 3 and percentile(values, 0.95) == 5 and percentile(values, 0.2) == 1
    assert percentile(list(range(1, 101)), 0.99) == 99
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_a_distribution_of_nothing_is_none_not_zeros() -> None:
    assert Distribution.of([]) is None
    summary = Distribution.of(iter([4.0, 1.0, 2.0, 3.0]))
    assert summary is not None
    assert (summary.n, summary.p50, summary.p95, summary.p99, summary.max, summary.mean) == (4, 2, 4, 4, 4, 2.5)


def test_the_machine_is_read_at_the_start_and_the_load_again_at_the_end() -> None:
    machine = Machine.now()
    assert machine.logical_cpus >= 1 and machine.usable_cpus and machine.cpu_model
    assert len(machine.load_average_start) == 3 and machine.load_average_end == []
    machine.finish()
    assert len(machine.load_average_end) == 3
    data = machine.to_json()
    assert "_started" not in data and data["python"].count(".") == 2
    assert "load average (1 min)" in machine.describe()


def test_model_sizes_come_from_files_folders_or_installed_packages(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"x" * 1000)
    (tmp_path / "model" / "config.json").write_bytes(b"{}")
    assert disk_size(tmp_path / "model" / "weights.bin") == 1000
    assert disk_size(tmp_path / "model") == 1002
    assert (disk_size("websockets") or 0) > 100_000  # a distribution: the sum of its installed files
    assert disk_size(tmp_path / "missing") is None
    model = ModelInfo.of("speech recognition", "tiny", tmp_path / "model")
    assert model.bytes == 1002 and "speech recognition: tiny" in model.describe()


def test_tables_align_and_json_keeps_paths_and_numpy_numbers(tmp_path: Path) -> None:
    table = format_table(["stage", "p50", "n"], [["end of turn", 381.2, 8], ["transport", 4.25, None]])
    header, first, second = table.splitlines()
    assert len(header) == len(first) == len(second)
    assert first.startswith("end of turn") and first.endswith("8") and "381" in first
    assert second.rstrip().endswith("-") and "4.25" in second
    rng = seed_everything(7)
    write_json(tmp_path / "r.json", {"path": tmp_path, "value": rng.integers(10), "same": seed_everything(7).random()})
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["path"] == str(tmp_path) and isinstance(data["value"], int)
    assert data["same"] == seed_everything(7).random()
