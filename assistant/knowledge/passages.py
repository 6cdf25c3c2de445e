"""``Passage``: what documents and packaged corpora yield and the store indexes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrievable piece of a document.

    ``text`` is what a search returns; ``embed_text`` is what the vector is
    computed from (the text with its section title, or for a couplet its
    chapter and meaning), so retrieval and presentation can differ.
    """

    text: str
    location: str = ""
    embed_text: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def embedding_input(self) -> str:
        return self.embed_text or self.text
