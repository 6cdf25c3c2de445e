"""``assistant bench relay``: the real-time criterion, the ramp, and a quick run end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.bench.relay import Comparison, Limits, Placement, Plan, RelayBench, StepResult, capacity, judge
from assistant.bench.report import Distribution
from tests.support.bench import assert_distribution, run_bench


def step(sessions: int, *, p99_ms: float = 3.0, lost: int = 0, send_lag_ms: float = 2.0, loop_lag_ms: float = 1.0,
         server_cpu: float | None = None) -> StepResult:
    """A step's figures as the bench would measure them, judged."""
    added = Distribution.of([1.0] * 98 + [p99_ms] * 2)
    cpu = server_cpu if server_cpu is not None else 0.03 * sessions
    result = StepResult(
        sessions=sessions,
        chunks_sent=100 * sessions,
        chunks_echoed=100 * sessions - lost,
        chunks_lost=lost,
        added_latency_ms=added,
        uplink_ms=added,
        downlink_ms=added,
        round_trip_ms=added,
        send_lag_ms=Distribution.of([0.5] * 98 + [send_lag_ms] * 2),
        server_cpu_cores=cpu,
        server_cpu_per_session=cpu / sessions,
        server_rss_mib_before=100.0,
        server_rss_mib=100.0 + 0.5 * sessions,
        server_rss_mib_per_session=0.5,
        generator_cpu_cores=0.5,
        generator_loop_lag_ms=Distribution.of([loop_lag_ms] * 10),
    )
    judge(result, Limits(max_p99_ms=50, max_send_lag_ms=20), pinned=True)
    return result


def test_real_time_breaks_on_latency_on_a_lost_chunk_or_on_send_lag() -> None:
    assert step(8).real_time
    assert step(8, p99_ms=80).failures == ["p99 added latency 80 ms > 50 ms"]
    assert step(8, lost=1).failures == ["1 of 800 chunks lost"]
    assert step(8, send_lag_ms=35).failures == ["p99 send lag 35 ms > 20 ms"]


def test_a_failure_with_the_generator_behind_and_the_server_idle_blames_the_generator() -> None:
    assert step(64, p99_ms=300, loop_lag_ms=30, server_cpu=0.5).generator_limited
    assert not step(64, p99_ms=300, loop_lag_ms=30, server_cpu=0.99).generator_limited  # the server was full
    assert not step(64, p99_ms=300, loop_lag_ms=2, server_cpu=0.5).generator_limited


def test_the_ramp_doubles_until_real_time_breaks_then_bisects(tmp_path: Path) -> None:
    bench = RelayBench(Plan(), Limits(), 1, Placement(None, []), tmp_path, "warning")
    for sessions in bench.sizes():
        bench.steps.append(step(sessions, p99_ms=3 if sessions <= 40 else 200))
    assert [s.sessions for s in bench.steps] == [1, 2, 4, 8, 16, 32, 64, 48, 40, 44]
    found = capacity(bench.steps)
    assert (found.sessions, found.first_broken, found.limited_by) == (40, 44, "server")
    assert found.cpu_per_session == pytest.approx(0.03) and found.rss_mib_per_session == pytest.approx(0.5)
    assert found.describe() == "40 sessions (real time broke at 44)"


def test_the_ramp_stops_at_the_plan_or_when_the_generator_is_the_limit(tmp_path: Path) -> None:
    capped = RelayBench(Plan(max_sessions=4), Limits(), 1, Placement(None, []), tmp_path, "warning")
    for sessions in capped.sizes():
        capped.steps.append(step(sessions))
    assert [s.sessions for s in capped.steps] == [1, 2, 4] and capacity(capped.steps).limited_by == "plan"
    starved = RelayBench(Plan(), Limits(), 1, Placement(None, []), tmp_path, "warning")
    for sessions in starved.sizes():
        starved.steps.append(step(sessions, p99_ms=3 if sessions < 16 else 200, loop_lag_ms=50, server_cpu=0.4))
    assert [s.sessions for s in starved.steps] == [1, 2, 4, 8, 16]
    assert "load generator" in capacity(starved.steps).describe()


def test_the_comparison_sets_the_relay_against_the_naive_proxy() -> None:
    relay, naive = step(50, server_cpu=0.3), step(50, server_cpu=0.9)
    naive.relay = "naive"
    compared = Comparison.of([relay, naive])
    assert compared == Comparison(sessions=50, relay_cpu_ms=6.0, naive_cpu_ms=18.0, ratio=3.0)
    assert Comparison.of([relay]) is None
    idle = step(50, server_cpu=0.0)
    assert Comparison.of([idle, naive]) is None  # no ratio against a CPU that did not register


def test_the_comparison_also_sets_them_against_each_other_on_each_loop() -> None:
    # The relay on uvloop (the default) against the guide's proxy on asyncio is the headline; the same-loop
    # ratios pair each program with the other on one loop, so the loop's share drops out.
    served, naive, served_asyncio, naive_uvloop = (step(50, server_cpu=cpu) for cpu in (0.4, 0.5, 0.5, 0.6))
    served_asyncio.relay, naive.relay, naive_uvloop.relay = "gemini-asyncio", "naive", "naive-uvloop"
    compared = Comparison.of([served, naive, served_asyncio, naive_uvloop])
    assert compared is not None and compared.ratio == 1.25
    assert compared.same_loop == {"asyncio": 1.0, "uvloop": 1.5}
    assert Comparison.of([served, naive, served_asyncio]).same_loop == {"asyncio": 1.0}  # type: ignore[union-attr]


def test_the_byte_pipe_sets_the_ceiling_no_relay_that_reads_its_messages_can_pass() -> None:
    served, naive, pipe = (step(50, server_cpu=cpu) for cpu in (0.4, 0.6, 0.25))
    naive.relay, pipe.relay = "naive", "pipe"
    compared = Comparison.of([served, naive, pipe])
    assert compared is not None and (compared.floor_cpu_ms, compared.ceiling, compared.ratio) == (5.0, 2.4, 1.5)
    without = Comparison.of([served, naive])
    assert without is not None and (without.floor_cpu_ms, without.ceiling) == (None, None)


@pytest.mark.slow
def test_bench_relay_quick_prints_and_writes_figures(tmp_path: Path) -> None:
    stdout, data = run_bench(tmp_path, "relay", "--plot", str(tmp_path / "relay.png"))
    assert "largest N one core holds in real time" in stdout
    assert [step["sessions"] for step in data["steps"]] == [1, 2, 4]
    for entry in data["steps"]:
        assert entry["chunks_sent"] >= 50 * entry["sessions"]  # 2 s of 20 ms chunks, each session
        assert entry["chunks_echoed"] + entry["chunks_lost"] == entry["chunks_sent"]
        for key in ("added_latency_ms", "uplink_ms", "downlink_ms", "round_trip_ms", "send_lag_ms"):
            assert_distribution(entry[key])
        assert entry["server_cpu_cores"] > 0 and entry["server_rss_mib"] > 0 and entry["generator_cpu_cores"] > 0
    assert set(data["capacity"]) == {"sessions", "first_broken", "limited_by", "cpu_per_session", "rss_mib_per_session"}
    assert data["limits"] == {"max_p99_ms": 50.0, "max_send_lag_ms": 20.0}
    # The naive proxy ran in the same run, at the comparison's session count, on the same core, and each
    # program ran on the other's loop too.
    assert [(step["relay"], step["sessions"]) for step in data["comparison"]] == [
        ("gemini", 4),
        ("naive", 4),
        ("gemini-asyncio", 4),
        ("naive-uvloop", 4),
        ("pipe", 4),
    ]
    for entry in data["comparison"]:
        assert entry["chunks_echoed"] + entry["chunks_lost"] == entry["chunks_sent"] >= 50 * 4
        assert_distribution(entry["added_latency_ms"])
    compared = data["compared"]
    assert compared["sessions"] == 4 and compared["relay_cpu_ms"] > 0 and compared["naive_cpu_ms"] > 0
    assert compared["ratio"] == pytest.approx(compared["naive_cpu_ms"] / compared["relay_cpu_ms"], rel=0.01)
    assert set(compared["same_loop"]) == {"asyncio", "uvloop"} and all(r > 0 for r in compared["same_loop"].values())
    assert "on the same loop, naive / relay: asyncio" in stdout
    # The byte pipe passed every echo too (its CPU is the floor), and the ceiling is set against it.
    assert compared["floor_cpu_ms"] > 0
    assert compared["ceiling"] == pytest.approx(compared["naive_cpu_ms"] / compared["floor_cpu_ms"], rel=0.01)
    assert "floor (bytes through, nothing read)" in stdout
    assert "naive proxy (json.loads + json.dumps)" in stdout and "ms per session-second" in stdout
    assert (tmp_path / "relay.png").read_bytes().startswith(b"\x89PNG")
