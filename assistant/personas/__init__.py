"""Personas: a system instruction, a voice, a knowledge collection and a tool list, in one file.

- ``load_persona(name)`` finds and validates one (shipped, from a package's
  ``assistant.personas`` entry point, or the user's ``personas/`` folder);
- ``apply_persona(setup, persona)`` applies it to a client's ``Setup``;
- ``PersonaProfiles`` serves them: the server's per-connection profile
  resolver, which also prepares each persona's knowledge.
"""

from assistant.personas.apply import PersonaSession, apply_persona
from assistant.personas.model import Persona, PersonaError, PersonaKnowledge, PersonaReadAloud, parse_persona
from assistant.personas.profiles import NO_PERSONA, PersonaProfiles, profile_for
from assistant.personas.registry import PersonaEntry, discover_personas, load_persona, user_persona_dir

__all__ = [
    "NO_PERSONA",
    "Persona",
    "PersonaEntry",
    "PersonaError",
    "PersonaKnowledge",
    "PersonaProfiles",
    "PersonaReadAloud",
    "PersonaSession",
    "apply_persona",
    "discover_personas",
    "load_persona",
    "parse_persona",
    "profile_for",
    "user_persona_dir",
]
