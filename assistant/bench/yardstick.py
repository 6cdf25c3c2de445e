"""What the relay bench's yardsticks share: their command line and the line that says they listen.

The naive proxy (``naive_proxy``) and the byte pipe (``byte_pipe``) each run
as their own process, started by ``assistant bench relay`` with the same
options, and print the line ``assistant serve`` prints when it listens, which
the bench waits for.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from assistant.server.app import DEFAULT_LIVE_PATH
from assistant.server.eventloop import LOOP_CHOICES, LoopChoice, run

# main(upstream base URL, the upstream's key, the PEM file its certificate is checked with)
YardstickMain = Callable[[str, str, str], Coroutine[Any, Any, None]]


def announce(port: int) -> None:
    """Say where the yardstick listens, in ``assistant serve``'s words."""
    print(f"  Live endpoint  ws://127.0.0.1:{port}{DEFAULT_LIVE_PATH}", file=sys.stderr, flush=True)


def command_line(description: str, main: YardstickMain, default_loop: LoopChoice, whose_loop: str) -> None:
    """Read the options the bench passes and run ``main`` on the loop asked for (``whose_loop`` names the default)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--upstream", required=True, help="the upstream's base URL, https://127.0.0.1:PORT")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--certificate", required=True, help="PEM file the upstream's certificate is checked with")
    parser.add_argument("--loop", choices=LOOP_CHOICES, default=default_loop, help=f"default %(default)s, {whose_loop}")
    options = parser.parse_args()
    run(main(options.upstream, options.api_key, options.certificate), options.loop)
