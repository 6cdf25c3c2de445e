"""PNG plots of the benchmarks' reports (``--plot FILE.png``), where a picture reads faster.

matplotlib is a bench-only extra (``pip install 'live-assistant[bench]'``);
nothing else in the project imports it. Each plot takes the same report
dictionary that ``--json`` writes, and puts the machine under the title.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assistant.bench.report import BenchUnavailable


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise BenchUnavailable("--plot needs matplotlib: pip install 'live-assistant[bench]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _machine_line(report: dict[str, Any]) -> str:
    machine = report["machine"]
    start = machine["load_average_start"][0] if machine["load_average_start"] else "?"
    end = machine["load_average_end"][0] if machine["load_average_end"] else "?"
    return f"{machine['cpu_model']}, {machine['logical_cpus']} CPUs, load {start} -> {end}, seed {report['seed']}"


def plot_latency(path: str | Path, report: dict[str, Any]) -> None:
    """Each stage's figures per turn (dots) with p50 and p95 marks, ms from silence onset."""
    plt = _pyplot()
    names = list(report["summary_ms"])
    per_stage: dict[str, list[float]] = {name: [] for name in names}
    for turn in report["turns"]:
        figures = {**turn["stages_ms"], "transport": turn["transport_ms"], "voice to voice": turn["voice_to_voice_ms"]}
        for name in names:
            if figures.get(name) is not None:
                per_stage[name].append(figures[name])
    figure, axes = plt.subplots(figsize=(9, 0.6 * len(names) + 1.8))
    for row, name in enumerate(reversed(names)):
        values = per_stage[name]
        axes.scatter(values, [row] * len(values), alpha=0.6, s=24, color="tab:blue")
        summary = report["summary_ms"][name]
        axes.plot([summary["p50"]] * 2, [row - 0.3, row + 0.3], color="black", linewidth=2)
        axes.plot([summary["p95"]] * 2, [row - 0.3, row + 0.3], color="tab:red", linewidth=1.5)
    labels = [f"{name} (its duration)" if name == "transport" else name for name in reversed(names)]
    axes.set_yticks(range(len(names)), labels)
    axes.axvline(0, color="grey", linewidth=0.8)
    axes.set_xlabel("ms from silence onset (black: p50, red: p95)")
    axes.set_title(f"assistant bench latency --backend {report['backend']}\n{_machine_line(report)}", fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_relay(path: str | Path, report: dict[str, Any]) -> None:
    """Added latency (p50, p99) and server CPU against the number of sessions."""
    plt = _pyplot()
    steps = sorted(report["steps"], key=lambda step: step["sessions"])
    sessions = [step["sessions"] for step in steps]
    figure, latency = plt.subplots(figsize=(8, 4.5))
    for key, style in (("p50", "o-"), ("p99", "s--")):
        values = [step["added_latency_ms"][key] if step["added_latency_ms"] else None for step in steps]
        latency.plot(sessions, values, style, label=f"added latency {key}")
    latency.axhline(report["limits"]["max_p99_ms"], color="tab:red", linewidth=0.8, label="real-time bound (p99)")
    latency.set_xscale("log", base=2)
    latency.set_yscale("log")
    latency.set_xlabel("concurrent sessions (20 ms audio each way)")
    latency.set_ylabel("ms per chunk")
    cpu = latency.twinx()
    cpu.plot(sessions, [step["server_cpu_cores"] * 100 for step in steps], "^:", color="tab:green", label="server CPU")
    cpu.set_ylabel("server CPU, % of one core")
    cpu.set_ylim(0, 110)
    best = report["capacity"]["sessions"]
    if best:
        latency.axvline(best, color="grey", linewidth=0.8, linestyle=":")
    handles = latency.get_legend_handles_labels()[0] + cpu.get_legend_handles_labels()[0]
    labels = latency.get_legend_handles_labels()[1] + cpu.get_legend_handles_labels()[1]
    latency.legend(handles, labels, loc="upper left", fontsize=8)
    latency.set_title(f"assistant bench relay\n{_machine_line(report)}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_frontend(path: str | Path, report: dict[str, Any]) -> None:
    """Cost per frame of each front-end stage (p50 bar, p95 whisker) against its frame's duration."""
    plt = _pyplot()
    rows = [(name, stage) for name, stage in report["stages"].items() if stage["cost_us"]]
    figure, axes = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.8))
    names = [name for name, _ in rows]
    p50 = [stage["cost_us"]["p50"] / 1000 for _, stage in rows]
    p95 = [stage["cost_us"]["p95"] / 1000 for _, stage in rows]
    positions = range(len(rows))
    axes.barh(positions, p50, color="tab:blue", label="p50")
    axes.errorbar(p95, positions, fmt="|", color="tab:red", markersize=12, label="p95")
    axes.set_yticks(positions, names)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("ms per call: 10 or 20 ms of audio (see the table), or one video frame")
    axes.legend(fontsize=8)
    axes.set_title(f"assistant bench frontend\n{_machine_line(report)}", fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
