"""The ``assistant`` command.

Each sub-command lives in its own module with ``register(subparsers)``, which
adds its parser and sets ``handler`` to a function of the parsed arguments
that returns an exit status. Adding a command means adding a module here.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from assistant import __version__

COMMANDS = (
    "assistant.cli.serve",
    "assistant.cli.tools",
    "assistant.cli.knowledge",
    "assistant.cli.personas",
    "assistant.cli.bench",
    "assistant.cli.talk",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistant",
        description="A real-time voice and vision assistant that speaks the Gemini Live protocol.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMANDS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
