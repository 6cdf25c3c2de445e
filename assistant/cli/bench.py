"""``assistant bench``: benchmarks that print figures (``latency`` now; more sub-commands later)."""

from __future__ import annotations

import argparse
from typing import Any

from assistant.logs import configure_logging


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="measure the assistant", description="Benchmarks that print figures.")
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    add_latency(benchmarks)


def add_latency(benchmarks: Any) -> None:
    from assistant.backends.local.options import add_arguments

    parser = benchmarks.add_parser(
        "latency",
        help="voice-to-voice latency of the local stack",
        description="Speak prompts in real time to an in-process server with the local backend and measure, per "
        "turn and per stage, the time from silence onset to the first audible reply sample.",
    )
    parser.add_argument("--quick", action="store_true", help="three prompts, for CI")
    parser.add_argument("--rounds", type=int, default=1, help="times through the prompt set (default %(default)s)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    add_arguments(parser.add_argument_group("local backend"))
    parser.set_defaults(handler=run_latency)


def run_latency(args: argparse.Namespace) -> int:
    from assistant.bench.latency import run_latency as bench

    configure_logging(args.log_level)
    return bench(args)
