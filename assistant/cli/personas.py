"""``assistant personas``: list the personas this installation can serve, or show one."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from assistant.config import ConfigError, add_config_argument, load_config
from assistant.personas.model import PersonaError, read_persona_file
from assistant.personas.registry import discover_personas, load_persona, user_persona_dir


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "personas",
        help="list personas (shipped, from packages, and your own)",
        description=f"List personas, or show one. Your own persona files go in {user_persona_dir()}.",
    )
    parser.add_argument("name", nargs="?", help="show this persona in full (a name, or a persona file to check)")
    parser.add_argument(
        "--persona-dir",
        dest="persona_dirs",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="also list the persona files of DIR, as `assistant serve --persona-dir` publishes them (repeatable)",
    )
    add_config_argument(parser)
    parser.set_defaults(handler=run)


def run(args: Any) -> int:
    try:  # the folders `assistant serve` publishes with the same options and config file
        folders = [*load_config(args.config).personas.dirs, *args.persona_dirs]
    except ConfigError as exc:
        print(f"assistant personas: {exc}", file=sys.stderr)
        return 1
    if args.name:
        try:
            if args.name.endswith(".toml") or os.sep in args.name:  # the user's own input, not a client's
                persona = read_persona_file(Path(args.name).expanduser())
            else:
                persona = load_persona(args.name, folders=folders)
        except PersonaError as exc:
            print(f"assistant personas: {exc}", file=sys.stderr)
            return 1
        print(persona.model_dump_json(indent=2, exclude_none=True))
        return 0
    status = 0
    for name, entry in discover_personas(folders=folders).items():
        try:
            persona = entry.load()
        except PersonaError as exc:
            status = 1
            print(f"{name}  INVALID: {exc}")
            continue
        print(f"{name}  {persona.title}: {persona.description}  [{entry.origin}]")
    return status
