"""``assistant personas``: list the personas this installation can serve, or show one."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from assistant.personas.model import PersonaError, read_persona_file
from assistant.personas.registry import discover_personas, load_persona, user_persona_dir


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "personas",
        help="list personas (shipped, from packages, and your own)",
        description=f"List personas, or show one. Your own persona files go in {user_persona_dir()}.",
    )
    parser.add_argument("name", nargs="?", help="show this persona in full (a name, or a persona file to check)")
    parser.set_defaults(handler=run)


def run(args: Any) -> int:
    if args.name:
        try:
            is_file = args.name.endswith(".toml") or os.sep in args.name  # the user's own input, not a client's
            persona = read_persona_file(Path(args.name).expanduser()) if is_file else load_persona(args.name)
        except PersonaError as exc:
            print(f"assistant personas: {exc}", file=sys.stderr)
            return 1
        print(persona.model_dump_json(indent=2, exclude_none=True))
        return 0
    status = 0
    for name, entry in discover_personas().items():
        try:
            persona = entry.load()
        except PersonaError as exc:
            status = 1
            print(f"{name}  INVALID: {exc}")
            continue
        print(f"{name}  {persona.title}: {persona.description}  [{entry.origin}]")
    return status
