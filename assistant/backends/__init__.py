"""Backends by name, imported only when chosen.

Each backend lives in its own sub-package with its own optional dependencies
(an install extra), so ``assistant serve --backend local`` never imports the
Gemini SDK and vice versa. A sub-package provides:

- ``options.py`` with ``add_arguments(parser)``: its command-line options,
  importing nothing heavy;
- in its ``__init__``, ``settings_from_args(args)``: its frozen settings from
  those options (the command line ends there), and
  ``create_backend(settings) -> Backend``.

A backend whose package or dependencies are missing fails at start with the
command that installs it.
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, TypeAlias

from assistant.backends.errors import BackendUnavailable
from assistant.session import Backend

if TYPE_CHECKING:
    from assistant.backends.gemini.options import GeminiSettings
    from assistant.backends.local.backend import LocalConfig

# What each backend is built from: its own frozen settings, never the command line's Namespace.
BackendSettings: TypeAlias = "GeminiSettings | LocalConfig"


@dataclass(frozen=True, slots=True)
class BackendSpec:
    name: str
    module: str
    extra: str
    summary: str


BACKENDS: dict[str, BackendSpec] = {
    "gemini": BackendSpec("gemini", "assistant.backends.gemini", "gemini", "Gemini Live through the google-genai SDK"),
    "local": BackendSpec("local", "assistant.backends.local", "local", "offline VAD, ASR, LLM and TTS on this machine"),
}

GEMINI_KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
DISTRIBUTION = "live-assistant"


def resolve_backend_name(name: str, environ: Mapping[str, str] = os.environ) -> str:
    """``auto`` means Gemini when a key is set (or Vertex AI is configured), else the local stack."""
    if name != "auto":
        if name not in BACKENDS:
            raise BackendUnavailable(f"unknown backend {name!r}; choose one of auto, {', '.join(BACKENDS)}")
        return name
    wants_vertex = environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in {"1", "true"}
    if any(environ.get(variable) for variable in GEMINI_KEY_VARIABLES) or wants_vertex:
        return "gemini"
    return "local"


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """Let every installed backend add its options (their ``options`` modules are light)."""
    for spec in BACKENDS.values():
        try:
            options = importlib.import_module(f"{spec.module}.options")
        except ModuleNotFoundError:
            continue
        group = parser.add_argument_group(f"{spec.name} backend ({spec.summary})")
        options.add_arguments(group)


def settings_from_args(name: str, args: argparse.Namespace) -> BackendSettings:
    """The settings of the backend called ``name`` from parsed options (``ValueError`` names a bad option)."""
    settings: BackendSettings = _package(name).settings_from_args(args)
    return settings


def create_backend(name: str, settings: BackendSettings) -> Backend:
    """Build the backend called ``name`` (after ``resolve_backend_name``) from its settings."""
    backend: Backend = _package(name).create_backend(settings)
    return backend


def _package(name: str) -> ModuleType:
    """The backend's package, or ``BackendUnavailable`` with the command that installs it."""
    spec = BACKENDS[name]
    try:
        return importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or "a dependency"
        raise BackendUnavailable(
            f"the {name} backend is not installed ({missing} is missing); "
            f"install it with: pip install '{DISTRIBUTION}[{spec.extra}]'"
        ) from exc


__all__ = [
    "BACKENDS",
    "BackendSettings",
    "BackendSpec",
    "BackendUnavailable",
    "add_backend_arguments",
    "create_backend",
    "resolve_backend_name",
    "settings_from_args",
]
