"""``assistant bench``: benchmarks that print a table and write JSON (and a PNG plot).

Every sub-command shares the same options: ``--quick`` (a short run for
CI), ``--json FILE``, ``--seed`` (runs repeat) and ``--log-level``;
``latency``, ``relay`` and ``frontend`` also draw ``--plot FILE.png``.
Heavy imports wait until a benchmark runs.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

from assistant.bench.options import ADD_ARGUMENTS
from assistant.cli.serve import add_server_tool_arguments
from assistant.logs import configure_logging

# sub-command -> (module in assistant.bench, one-line help, description)
BENCHMARKS = {
    "latency": (
        "latency",
        "voice-to-voice latency, per turn and per stage",
        "Speak prompts in real time to an in-process server and measure, per turn and per stage, the time from "
        "silence onset to the first audible reply sample: through the local backend, or through the Gemini "
        "backend to a Gemini-protocol upstream on loopback (--backend gemini).",
    ),
    "relay": (
        "relay",
        "the Gemini relay: added latency, CPU and memory per session, sessions per core",
        "Stream real-time audio from N concurrent sessions through `assistant serve --backend gemini` to an "
        "echoing Gemini-protocol upstream on loopback, ramping N until real time breaks.",
    ),
    "frontend": (
        "frontend",
        "cost per frame of the audio front end (AEC, VAD, resampling) and of the video sampler",
        "Time each stage of the audio front end per 20 ms frame over a simulated laptop echo scene (with its echo "
        "figures), and the video sampler per camera frame.",
    ),
    "tools": (
        "tools",
        "what the tool registry costs per call, an MCP round trip, memory recall at scale",
        "Time the tool registry's overhead per call, a call to an MCP server over stdio, and the memory tool's "
        "remember and recall over hundreds of facts.",
    ),
    "scale": (
        "scale",
        "conversations through HAProxy across two processes sharing Redis: a kill, the store's latency",
        "Hold N conversations through HAProxy (deploy/haproxy.cfg) across two `assistant serve --backend gemini "
        "--store redis://` processes and a private redis-server, kill one process half-way (SIGKILL) and count "
        "the sessions held and the turns lost; then the same on one process with SQLite, for the store's added "
        "latency per turn.",
    ),
    "vision": (
        "vision",
        "each local image analyser's cost per frame, and OCR accuracy",
        "Time each local image analyser per frame (model loading excluded) and read rendered sentences with OCR.",
    ),
    "routing": (
        "routing",
        "the offline tool router: accuracy and confusion on its public evaluation set",
        "Route every phrasing of the router's public evaluation set (tool requests in everyday and recogniser-style "
        "wording, small talk, general questions) and report the accuracy, a confusion table and what was misrouted.",
    ),
    "wakeword": (
        "wakeword",
        "the packaged wake word models: false accepts per hour of speech without the word, and misses",
        "Stream about ten minutes of speech without any wake word (spoken at run time by espeak-ng voices and the "
        "Piper voice, optionally under noise: --snr) through each packaged wake word model, counting false accepts "
        "per hour, then say each model's word 20 times and count the misses.",
    ),
    "hearing": (
        "hearing",
        "the offline recogniser: word error with and without the session's vocabulary, when to ask again",
        "Decode spoken requests as a session does, after a reply, with and without the session's vocabulary in "
        "the recogniser's prompt; and the recogniser's confidence on clean and garbled requests, with the false "
        "'please repeat' rate and the mishearings caught at each threshold.",
    ),
}
PLOTTED = {"latency", "relay", "frontend"}
# Benchmarks that serve with the serve command's tool, persona and knowledge options.
SERVING_TOOLS = {"latency"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="measure the assistant", description=__doc__.split("\n\n")[0])
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, (module, summary, description) in BENCHMARKS.items():
        sub = benchmarks.add_parser(name, help=summary, description=description)
        add_common_arguments(sub, plots=name in PLOTTED)
        if name in SERVING_TOOLS:
            add_server_tool_arguments(sub)
        ADD_ARGUMENTS[name](sub)
        sub.set_defaults(handler=_runner(module))


def add_common_arguments(parser: argparse.ArgumentParser, plots: bool) -> None:
    from assistant.bench.report import DEFAULT_SEED

    parser.add_argument("--quick", action="store_true", help="a short run, for CI")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    if plots:
        parser.add_argument("--plot", metavar="FILE.png", help="also draw the figures (needs matplotlib)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of every random choice (%(default)s)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])


def _runner(module: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        configure_logging(args.log_level)
        benchmark = importlib.import_module(f"assistant.bench.{module}")
        status: int = benchmark.run(args)
        return status

    return run
