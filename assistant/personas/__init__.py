"""Personas: a system instruction, a voice, a knowledge collection and a tool list, in one file.

- ``load_persona(name)`` finds and validates one (shipped, from a package's
  ``assistant.personas`` entry point, or the user's ``personas/`` folder);
- ``apply_persona(setup, persona)`` applies it to a client's ``Setup``;
- ``stream_espeak(text, voice)`` reads an original text aloud (the Tamil of a couplet).
"""

from assistant.personas.apply import PersonaSession, apply_persona, prepare_persona_knowledge
from assistant.personas.model import Persona, PersonaError, PersonaKnowledge, PersonaReadAloud, parse_persona
from assistant.personas.registry import PersonaEntry, discover_personas, load_persona, user_persona_dir
from assistant.personas.speech import ReadAloudError, read_aloud, stream_espeak

__all__ = [
    "Persona",
    "PersonaEntry",
    "PersonaError",
    "PersonaKnowledge",
    "PersonaReadAloud",
    "PersonaSession",
    "ReadAloudError",
    "apply_persona",
    "discover_personas",
    "load_persona",
    "parse_persona",
    "prepare_persona_knowledge",
    "read_aloud",
    "stream_espeak",
    "user_persona_dir",
]
