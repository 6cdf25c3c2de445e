"""Applying a persona to a client's session setup.

The rules, in one place:

- **Instruction.** The persona's instruction comes first: it says who the
  assistant is. A client's own ``systemInstruction`` follows it, after a
  blank line, so a page can still narrow the persona ("answer in two
  sentences") but cannot silently replace it. A persona with
  ``client_instruction = "ignore"`` (a kiosk) drops the client's instead.
- **Voice.** The persona's voice is used only when the client asked for
  none; an explicit choice by the user wins.
- **Tools.** The persona's allowlist applies to *server* tools only
  (``filter_server_tools``): functions a client declares are the client's
  own business and pass untouched.
- **Knowledge.** The persona's collection becomes the default collection of
  ``search_knowledge`` for the session (``PersonaSession.collection``); its
  packaged corpus is indexed when the persona is first chosen (``profiles``).

The client's ``Setup`` is never modified; a new one is returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from assistant.personas.model import Persona
from assistant.protocol import FunctionDeclaration, Setup
from assistant.protocol.models import (
    Content,
    GenerationConfig,
    Part,
    PrebuiltVoiceConfig,
    SpeechConfig,
    VoiceConfig,
)


@dataclass(frozen=True, slots=True)
class PersonaSession:
    """A session's setup with a persona applied, and what the server needs to honour it."""

    persona: Persona
    setup: Setup

    @property
    def collection(self) -> str | None:
        """The default collection for ``search_knowledge``, or None for the store's default."""
        return self.persona.knowledge.collection if self.persona.knowledge else None

    def filter_server_tools(self, declarations: Sequence[FunctionDeclaration]) -> list[FunctionDeclaration]:
        """The server tools' declarations this persona offers, in their order."""
        return [d for d in declarations if self.persona.allows_tool(d.name)]


def _instruction(persona: Persona, client: Content | None) -> Content:
    if client is None or persona.client_instruction == "ignore":
        return Content(parts=[Part(text=persona.instruction)])
    client_text = client.text().strip()
    text = f"{persona.instruction}\n\n{client_text}" if client_text else persona.instruction
    other_parts = [part for part in client.parts if part.text is None]
    return Content(role=client.role, parts=[Part(text=text), *other_parts])


def _with_voice(config: GenerationConfig | None, voice: str) -> GenerationConfig:
    config = config or GenerationConfig()
    speech = config.speech_config or SpeechConfig()
    voice_config = (speech.voice_config or VoiceConfig()).model_copy(
        update={"prebuilt_voice_config": PrebuiltVoiceConfig(voice_name=voice)}
    )
    return config.model_copy(update={"speech_config": speech.model_copy(update={"voice_config": voice_config})})


def apply_persona(setup: Setup, persona: Persona) -> PersonaSession:
    """The client's setup with ``persona`` applied by the rules in the module docstring."""
    update: dict[str, object] = {"system_instruction": _instruction(persona, setup.system_instruction)}
    if persona.voice and not setup.voice_name():
        update["generation_config"] = _with_voice(setup.generation_config, persona.voice)
    return PersonaSession(persona, setup.model_copy(update=update))
