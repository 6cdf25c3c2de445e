"""What every benchmark reports besides its figures: the machine, the models, the statistics.

A figure without the machine it was measured on cannot be trusted or
compared, so every report carries a ``Machine`` (CPU model, cores, the cores
this run may use, memory, and the load average when the run started and
ended: other work on a shared machine shows up there) and, where models are
involved, each model's name, source and size on disk.

Statistics are nearest-rank percentiles with no interpolation: with ten
samples, p95 is the largest one, which is what a user would meet, not a
value between two samples that nobody met.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import AssistantError

DEFAULT_SEED = 1


class BenchUnavailable(AssistantError, RuntimeError):
    """Something a benchmark needs is missing; the message says what installs it."""


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: small samples stay honest)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Distribution:
    """Summary of a set of timings (or any non-negative figures), in the unit they came in."""

    n: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Distribution | None:
        """None for no values: a stage that never happened has no figures, not zeros."""
        data = list(values)
        if not data:
            return None
        return cls(
            n=len(data),
            p50=percentile(data, 0.50),
            p95=percentile(data, 0.95),
            p99=percentile(data, 0.99),
            max=max(data),
            mean=statistics.fmean(data),
        )

    def rounded(self, digits: int = 3) -> dict[str, float]:
        return {name: round(value, digits) if name != "n" else value for name, value in asdict(self).items()}


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's, NumPy's and onnxruntime's generators; return a generator for the benchmark's own draws.

    onnxruntime's matters: the Piper voice samples its speech, so unseeded,
    every run spoke a different take of each prompt (and the recogniser
    heard some takes differently).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    with contextlib.suppress(ModuleNotFoundError):
        import onnxruntime

        onnxruntime.set_seed(seed % 2**31)
    return np.random.default_rng(seed)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * page_size / 2**30, 1)


def _usable_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return list(range(os.cpu_count() or 1))


def _load_average() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


@dataclass
class Machine:
    """The machine a run measured, read at its start; ``finish`` adds the load at its end."""

    cpu_model: str
    logical_cpus: int
    usable_cpus: list[int]
    memory_gib: float | None
    system: str
    python: str
    started_at: str
    load_average_start: list[float]  # 1, 5 and 15 minutes
    load_average_end: list[float] = field(default_factory=list)
    seconds: float = 0.0
    _started: float = field(default=0.0, repr=False)

    @classmethod
    def now(cls) -> Machine:
        return cls(
            cpu_model=_cpu_model(),
            logical_cpus=os.cpu_count() or 1,
            usable_cpus=_usable_cpus(),
            memory_gib=_memory_gib(),
            system=f"{platform.system()} {platform.release()}",
            python=sys.version.split()[0],
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            load_average_start=_load_average(),
            _started=time.monotonic(),
        )

    def finish(self) -> None:
        self.load_average_end = _load_average()
        self.seconds = round(time.monotonic() - self._started, 1)

    def describe(self) -> str:
        """Two lines for the foot of a table."""
        start = self.load_average_start[0] if self.load_average_start else "?"
        end = self.load_average_end[0] if self.load_average_end else "?"
        memory = f", {self.memory_gib} GiB" if self.memory_gib else ""
        return (
            f"machine: {self.cpu_model}, {self.logical_cpus} logical CPUs{memory}; "
            f"{self.system}, Python {self.python}\n"
            f"load average (1 min): {start} at the start, {end} at the end of a {self.seconds:.0f} s run"
        )

    def to_json(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if not name.startswith("_")}


def disk_size(source: str | Path) -> int | None:
    """Bytes on disk of a model file or folder, or of the installed distribution named ``source``."""
    path = Path(source).expanduser()
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    try:
        files = importlib.metadata.distribution(str(source)).files or []
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None
    total = 0
    for file in files:
        located = Path(str(file.locate()))
        if located.is_file():
            total += located.stat().st_size
    return total


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model a run used: what it does, its name, where it came from, its size on disk."""

    component: str
    name: str
    source: str
    bytes: int | None

    @classmethod
    def of(cls, component: str, name: str, source: str | Path) -> ModelInfo:
        return cls(component, name, str(source), disk_size(source))

    def describe(self) -> str:
        size = f"{self.bytes / 2**20:.1f} MiB" if self.bytes is not None else "size unknown"
        return f"{self.component}: {self.name} ({size})"


def describe_models(models: Sequence[ModelInfo]) -> str:
    return "models: " + "; ".join(model.describe() for model in models) if models else ""


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, first_width: int | None = None) -> str:
    """A plain text table: the first column left-aligned, the others right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    if first_width is not None:
        widths[0] = max(widths[0], first_width)

    def line(values: Sequence[str]) -> str:
        head, *rest = values
        cells = [value.rjust(width) for value, width in zip(rest, widths[1:], strict=True)]
        return "  ".join([head.ljust(widths[0]), *cells])

    return "\n".join([line(list(headers)), *(line(row) for row in cells)])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def publish(args: Any, report: dict[str, Any], plot: Callable[[str, dict[str, Any]], None] | None = None) -> None:
    """Write the report where ``--json`` says, and draw it where ``--plot`` says (when the benchmark plots)."""
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    if plot is not None and args.plot:
        plot(args.plot, report)
        print(f"wrote {args.plot}")


def write_json(path: str | Path, report: dict[str, Any]) -> None:
    """Write a report; the machine and the figures travel together."""
    Path(path).write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
