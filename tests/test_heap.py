"""``settle_heap``: start-up's garbage is freed, what is left is out of the collector's walks."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from assistant.server.heap import settle_heap


class Node:
    """A container the cyclic collector tracks."""

    def __init__(self) -> None:
        self.partner: Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Give the rest of the suite its heap back as it was."""
    assert gc.get_freeze_count() == 0
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
def test_start_up_garbage_is_collected_before_the_rest_is_frozen() -> None:
    cycle = Node()
    cycle.partner = cycle
    garbage = weakref.ref(cycle)
    del cycle
    kept = Node()

    frozen = settle_heap()

    assert garbage() is None  # frozen, a cycle would never be freed
    assert frozen == gc.get_freeze_count() > 0
    for generation in range(3):
        assert not any(obj is kept for obj in gc.get_objects(generation))  # no full pass walks it again
    assert gc.is_tracked(kept)
