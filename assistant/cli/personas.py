"""``assistant personas``: list the personas this installation can serve, or show one."""

from __future__ import annotations

import sys
from typing import Any

from assistant.personas.model import PersonaError
from assistant.personas.registry import discover_personas, load_persona, user_persona_dir


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "personas",
        help="list personas (shipped, from packages, and your own)",
        description=f"List personas, or show one. Your own persona files go in {user_persona_dir()}.",
    )
    parser.add_argument("name", nargs="?", help="show this persona in full")
    parser.set_defaults(handler=run)


def run(args: Any) -> int:
    if args.name:
        try:
            persona = load_persona(args.name)
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
