"""What each family of Live models needs that the others do not, in one table.

Every Live model speaks the same protocol, but not every model takes every
setup the same way. Gemini 3.x puts audio and its transcript in one message
(handled in the session, for every backend); the differences that change
what this backend must send are kept here, so adding a model is one row:

- ``thinking``: the model accepts ``generationConfig.thinkingConfig``
  (3.8 rejects it, closing 1007; the backend leaves it out and says so);
- ``history_config``: re-seeding a new upstream session with past turns in
  ``clientContent`` needs ``historyConfig.initialHistoryInClientContent``
  in the setup (3.1 and later), else the seed is refused;
- ``non_blocking_default``: a function declared without ``behavior`` is
  NON_BLOCKING (3.8). Clients of this server mean BLOCKING when they say
  nothing (as older models and the local backend do), so the backend writes
  ``BLOCKING`` out for them.

Imported by ``options`` for ``assistant serve --help``: nothing heavy here.
"""

from __future__ import annotations

from dataclasses import dataclass

MODEL_PREFIXES = ("models/", "publishers/google/models/")


@dataclass(frozen=True, slots=True)
class ModelQuirks:
    """How one family of Live models differs from the protocol's plain reading."""

    thinking: bool = True
    history_config: bool = False
    non_blocking_default: bool = False


# Most specific first: the first prefix a model's name starts with wins.
QUIRKS: tuple[tuple[str, ModelQuirks], ...] = (
    ("gemini-3.8", ModelQuirks(thinking=False, history_config=True, non_blocking_default=True)),
    ("gemini-3.1", ModelQuirks(history_config=True)),
)
PLAIN = ModelQuirks()


def quirks_for(model: str) -> ModelQuirks:
    """The quirks of ``model`` (with or without a ``models/`` prefix); none for models not in the table."""
    name = model.strip()
    for prefix in MODEL_PREFIXES:
        name = name.removeprefix(prefix)
    for family, quirks in QUIRKS:
        if name.startswith(family):
            return quirks
    return PLAIN
