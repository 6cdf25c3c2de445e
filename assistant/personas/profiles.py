"""Personas as session profiles: what ``assistant serve --persona`` and a connection's ``?persona=`` choose.

``PersonaProfiles`` is the server's ``ProfileResolver``. Any persona the
operator published (shipped, from packages, the user's folder, ``--persona-dir``
folders) may be chosen per connection *by name*; the server's default
(``--persona``) applies when a connection names none, and ``none`` asks for
the plain assistant. A client's name is checked against the persona name
pattern before any lookup and never becomes a path (see ``registry``).

A persona is read afresh for each connection, on a worker thread (never on
the event loop), so an edited file applies to the next conversation without
a restart. An unknown name closes the connection (1008) with the names that
exist; a published persona whose file is invalid closes it saying so, while
the file and the field go to the server log only (a client learns nothing
about the server's files).

Knowledge. Choosing a persona configures its collection in the
``KnowledgeService`` (passages per search, the field holding an original to
read aloud) and indexes its packaged corpus:

- the default persona's at startup, before the server listens
  (``start``), so its first question already finds the couplets;
- any other persona's in the background when a connection first chooses it.
  An index already on disk is recognised in milliseconds; a first index
  takes a minute or two, and until it is done ``search_knowledge`` answers
  that the collection is still being indexed, which the model relays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.knowledge.service import CollectionSettings, KnowledgeService, ReadAloud
from assistant.knowledge.store import AddResult, KnowledgeError
from assistant.personas.apply import apply_persona
from assistant.personas.model import Persona, PersonaError, UnknownPersona
from assistant.personas.registry import discover_personas, load_persona, persona_name
from assistant.protocol import Setup
from assistant.session.profiles import SessionProfile, UnknownProfile

logger = logging.getLogger("assistant.personas")

NO_PERSONA = "none"  # a connection's way to ask for the plain assistant when the server has a default persona


class PersonaProfiles:
    """Resolves persona names to session profiles, and prepares their knowledge."""

    def __init__(
        self,
        knowledge: KnowledgeService,
        default: str | None = None,
        *,
        user_dir: Path | None = None,
        folders: Sequence[Path] = (),
    ) -> None:
        """``folders``: the operator's published persona folders (or files), after ``user_dir``."""
        self.knowledge = knowledge
        self.default = default
        self.user_dir = user_dir
        self.folders = tuple(folders)

    async def __call__(self, name: str | None) -> SessionProfile | None:
        """The profile for a connection's requested persona (None: the server's default)."""
        chosen = name or self.default
        if chosen is None or chosen.lower() == NO_PERSONA:
            return None
        persona = await asyncio.to_thread(self.persona, chosen)
        self._activate(persona)
        return profile_for(persona)

    def persona(self, name: str) -> Persona:
        """The published persona called ``name`` (blocking: reads its file).

        ``UnknownProfile`` with a reason fit for a client: the names that
        exist, or that the persona's definition is invalid (the detail is logged).
        """
        try:
            return self._load(name)
        except UnknownPersona as exc:
            raise UnknownProfile(str(exc)) from None
        except PersonaError as exc:
            logger.warning("persona %s cannot be served: %s", persona_name(name), exc)
            raise UnknownProfile(
                f"persona {persona_name(name)!r} cannot be used: its definition is invalid (see the server log)"
            ) from None

    def _load(self, name: str) -> Persona:
        return load_persona(name, user_dir=self.user_dir, folders=self.folders)

    def _activate(self, persona: Persona) -> None:
        """Configure the persona's collection and start indexing its corpus (once per process)."""
        if persona.knowledge is None:
            return
        read_aloud = persona.read_aloud
        self.knowledge.configure(
            persona.knowledge.collection,
            CollectionSettings(
                passages=persona.knowledge.passages,
                read_aloud=ReadAloud(read_aloud.voice, read_aloud.metadata_field) if read_aloud else None,
            ),
        )
        if persona.knowledge.corpus is not None:
            self.knowledge.prepare(persona.knowledge.collection, persona.knowledge.corpus)

    async def start(self) -> AddResult | None:
        """At server start: open the knowledge store, check the default persona, index its corpus.

        ``UnknownProfile`` for a default persona that does not exist or is
        invalid. A store that cannot be opened stops only a default persona
        that needs it (``KnowledgeError``); otherwise it is logged, and memory
        and search answer with the reason when asked. Returns what indexing
        did (None: nothing to index).
        """
        persona = None
        if self.default and self.default.lower() != NO_PERSONA:
            try:  # the operator's own choice: tell them which file and field are wrong
                persona = await asyncio.to_thread(self._load, self.default)
            except PersonaError as exc:
                raise UnknownProfile(str(exc)) from None
        try:
            await self.knowledge.open_async()
        except KnowledgeError as exc:
            if persona is not None and persona.knowledge is not None:
                raise KnowledgeError(f"persona {persona.name} needs the knowledge store: {exc}") from exc
            logger.warning("no knowledge store (memory and document search will say why when asked): %s", exc)
            return None
        if persona is None:
            return None
        self._activate(persona)
        if persona.knowledge is None or persona.knowledge.corpus is None:
            return None
        return await self.knowledge.prepare(persona.knowledge.collection, persona.knowledge.corpus)

    def catalog(self) -> dict[str, Any]:
        """What a client can choose from (the browser's persona picker): names, titles, descriptions."""
        personas = []
        for name, entry in discover_personas(self.user_dir, self.folders).items():
            try:
                persona = entry.load()
            except PersonaError as exc:
                logger.warning("persona %s is not offered: %s", name, exc)
                continue
            personas.append({"name": name, "title": persona.title, "description": persona.description})
        return {"default": self.default, "none": NO_PERSONA, "personas": personas}


def profile_for(persona: Persona) -> SessionProfile:
    """How sessions with ``persona`` run: its setup rules, its tools, its collection."""

    def apply(setup: Setup) -> Setup:
        return apply_persona(setup, persona).setup

    return SessionProfile(
        name=persona.name,
        apply=apply,
        offers_tool=persona.allows_tool,
        knowledge_collection=persona.knowledge.collection if persona.knowledge else None,
    )
