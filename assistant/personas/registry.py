"""Finding personas: shipped with the project, installed by packages, written by the user.

Looked up by name in four places; a later one overrides an earlier one of
the same name, so a user can adjust a shipped persona by copying its file:

1. shipped: ``assistant/personas/builtin/*.toml``;
2. installed packages: the ``assistant.personas`` entry-point group, where
   each entry names a ``Persona``, a path (``str``, ``Path`` or
   ``importlib.resources`` ``Traversable``) of a persona TOML file, or a
   callable returning either (``thiruvalluvar = "mypkg.personas:FILE"``);
3. the user's folder: ``<config dir>/personas/*.toml`` (``$ASSISTANT_CONFIG_DIR``
   overrides the platform's config directory, as ``$ASSISTANT_DATA_DIR`` does
   for data);
4. folders (or single ``.toml`` files) the operator publishes, in order:
   ``assistant serve --persona-dir DIR`` and ``[personas] dirs`` in the config file.

These are *published* personas, and ``load_persona`` finds only them, by
name: a name is checked against ``PERSONA_NAME`` (lower-case letters, digits,
``-`` and ``_``; no separators, dots or spaces) before anything is looked up,
so a name a client sends (``?persona=/etc/passwd``, ``../x.toml``) never
becomes a path. Operators who want a file elsewhere publish it (``folders``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import platformdirs

from assistant.personas.model import (
    PERSONA_NAME,
    Persona,
    PersonaError,
    UnknownPersona,
    parse_persona,
    read_persona_file,
)

ENTRY_POINT_GROUP = "assistant.personas"


def user_persona_dir() -> Path:
    """Where a user's own persona files live (not created: an absent folder just has no personas)."""
    override = os.environ.get("ASSISTANT_CONFIG_DIR")
    base = Path(override).expanduser() if override else platformdirs.user_config_path("assistant")
    return base / "personas"


def _shipped_files() -> list[Traversable]:
    folder = resources.files("assistant.personas").joinpath("builtin")
    return sorted((f for f in folder.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)


@dataclass(frozen=True, slots=True)
class PersonaEntry:
    """A persona found somewhere, loaded (and validated) only when asked for."""

    name: str
    origin: str
    load: Callable[[], Persona]


def _from_traversable(file: Traversable, origin: str) -> Persona:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PersonaError(f"{origin}: cannot read: {exc}") from exc
    return parse_persona(text, origin=origin, default_name=file.name.removesuffix(".toml"))


def _from_entry_point(entry: EntryPoint) -> Persona:
    origin = f"entry point {entry.name} = {entry.value}" + (f" ({entry.dist.name})" if entry.dist else "")
    try:
        value: object = entry.load()
    except Exception as exc:  # an installed package's import error must not take the listing down
        raise PersonaError(f"{origin}: cannot load: {exc}") from exc
    if callable(value) and not isinstance(value, Persona):
        value = value()
    if isinstance(value, Persona):
        return value
    if isinstance(value, str | os.PathLike):
        return read_persona_file(Path(value))
    if isinstance(value, Traversable):
        return _from_traversable(value, origin)
    raise PersonaError(f"{origin}: expected a Persona or the path of a persona TOML file, got {type(value).__name__}")


def _published_files(folder: Path) -> list[Path]:
    """The persona files a published folder (or a single published ``.toml`` file) offers."""
    if folder.is_file():
        return [folder] if folder.suffix == ".toml" else []
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.glob("*.toml") if PERSONA_NAME.fullmatch(path.stem))


def discover_personas(user_dir: Path | None = None, folders: Sequence[Path] = ()) -> dict[str, PersonaEntry]:
    """Every published persona by name, later sources overriding earlier ones (see the module docstring).

    ``folders`` are the operator's published folders or files, after the user's folder.
    """
    found: dict[str, PersonaEntry] = {}
    for file in _shipped_files():
        name = file.name.removesuffix(".toml")
        origin = f"shipped ({name}.toml)"
        found[name] = PersonaEntry(name, origin, functools.partial(_from_traversable, file, origin))
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"package {entry.dist.name if entry.dist else entry.value}"
        found[entry.name] = PersonaEntry(entry.name, origin, functools.partial(_from_entry_point, entry))
    for folder in (user_dir or user_persona_dir(), *folders):
        for path in _published_files(folder):
            found[path.stem] = PersonaEntry(path.stem, str(path), functools.partial(read_persona_file, path))
    return dict(sorted(found.items()))


def persona_name(name: str) -> str | None:
    """``name`` as personas are keyed (lower case), or None when it cannot name one (a path, a long string)."""
    key = name.lower()
    return key if PERSONA_NAME.fullmatch(key) else None


def load_persona(name: str, *, user_dir: Path | None = None, folders: Sequence[Path] = ()) -> Persona:
    """The published persona called ``name``, validated; never a file ``name`` points at.

    ``UnknownPersona`` names what is available when nothing matches (the
    name is not echoed unless it is a valid persona name); ``PersonaError``
    names the file and field when a persona is invalid (for the operator:
    ``PersonaProfiles`` keeps that detail out of what clients are told).
    """
    key = persona_name(name)
    personas = discover_personas(user_dir, folders)
    available = ", ".join(personas) or "none"
    if key is None:
        raise UnknownPersona(f"persona names are 1-64 lower-case letters, digits, '-' or '_'; available: {available}")
    entry = personas.get(key)
    if entry is None:
        raise UnknownPersona(f"no persona named {key!r}; available: {available}")
    persona = entry.load()
    if persona.name != entry.name:
        raise PersonaError(f"{entry.origin}: declares name {persona.name!r} but is found as {entry.name!r}")
    return persona
