"""Personas: a system instruction, a voice, a knowledge collection and a tool list, in one file.

- ``load_persona(name)`` finds and validates one by name among the published
  (shipped, a package's ``assistant.personas`` entry point, the user's
  ``personas/`` folder, the operator's ``--persona-dir``); never by path;
- ``apply_persona(setup, persona)`` applies it to a client's ``Setup``;
- ``PersonaProfiles`` serves them: the server's per-connection profile
  resolver, which also prepares each persona's knowledge.
"""

from assistant.personas.apply import PersonaSession, apply_persona
from assistant.personas.model import (
    Persona,
    PersonaError,
    PersonaKnowledge,
    PersonaReadAloud,
    UnknownPersona,
    parse_persona,
)
from assistant.personas.profiles import NO_PERSONA, PersonaProfiles, profile_for
from assistant.personas.registry import PersonaEntry, discover_personas, load_persona, persona_name, user_persona_dir

__all__ = [
    "NO_PERSONA",
    "Persona",
    "PersonaEntry",
    "PersonaError",
    "PersonaKnowledge",
    "PersonaProfiles",
    "PersonaReadAloud",
    "PersonaSession",
    "UnknownPersona",
    "apply_persona",
    "discover_personas",
    "load_persona",
    "parse_persona",
    "persona_name",
    "profile_for",
    "user_persona_dir",
]
