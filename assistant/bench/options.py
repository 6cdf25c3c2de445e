"""Command-line options of each benchmark (light imports only: ``assistant --help`` reads them)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

# relay: what "real time" means (see assistant.bench.relay)
DEFAULT_MAX_P99_MS = 50.0
DEFAULT_MAX_SEND_LAG_MS = 20.0  # one 20 ms chunk


def add_latency_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=["local", "gemini"],
        default="local",
        help="local: the offline stack; gemini: the Gemini backend, its upstream a Gemini-protocol stand-in "
        "on loopback that speaks each utterance back once the speaker pauses (default %(default)s)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="times through the prompt set (default %(default)s)")
    try:
        from assistant.backends.local.options import add_arguments
    except ModuleNotFoundError:
        return
    add_arguments(parser.add_argument_group("local backend"))


def session_counts(text: str) -> list[int]:
    """``--sessions 1,8,32``."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected session counts like 1,8,32, not {text!r}") from None
    if any(count < 1 for count in counts):
        raise argparse.ArgumentTypeError("session counts must be at least 1")
    return counts


def add_relay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sessions", type=session_counts, help="session counts to run, e.g. 1,8,32, instead of searching"
    )
    parser.add_argument(
        "--max-sessions", type=int, help="search up to this many sessions (default 256; --quick runs 1,2,4)"
    )
    parser.add_argument("--duration", type=float, help="measured seconds per step (default 10; 2 with --quick)")
    parser.add_argument(
        "--max-p99-ms", type=float, default=DEFAULT_MAX_P99_MS, help="real time: p99 added latency bound (%(default)s)"
    )
    parser.add_argument(
        "--max-send-lag-ms",
        type=float,
        default=DEFAULT_MAX_SEND_LAG_MS,
        help="real time: p99 bound on how late a client could send (%(default)s)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server to one CPU")
    parser.add_argument(
        "--compare-sessions",
        type=int,
        help="compare the relay with a naive json.loads/json.dumps proxy and a byte pipe that reads nothing "
        "(the floor) at this many sessions, in the same run (default 50; 4 with --quick; 0: no comparison)",
    )
    parser.add_argument("--compare-only", action="store_true", help="run the comparison only, not the ramp")


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sessions", type=int, help="conversations at once (default 8; 4 with --quick)")
    parser.add_argument("--duration", type=float, help="seconds each run lasts (default 20; 6 with --quick)")


def add_vision_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ocr", choices=("rapidocr", "tesseract"), default="rapidocr", help="text reader (default %(default)s)"
    )


def add_wakeword_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models", type=lambda text: text.split(","), help="wake word models, e.g. okay_nabu,alexa (default: all)"
    )
    parser.add_argument("--snr", type=float, metavar="DB", help="add white noise this many dB below the speech")
    parser.add_argument(
        "--minutes", type=float, help="minutes of speech without a wake word (default 10; 1 with --quick)"
    )
    parser.add_argument("--sayings", type=int, help="times each wake word is said (default 20; 5 with --quick)")


ADD_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "latency": add_latency_arguments,
    "relay": add_relay_arguments,
    "frontend": lambda parser: None,
    "tools": lambda parser: None,
    "vision": add_vision_arguments,
    "routing": lambda parser: None,
    "hearing": lambda parser: None,
    "scale": add_scale_arguments,
    "wakeword": add_wakeword_arguments,
}
