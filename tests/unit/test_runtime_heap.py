"""A service process freezes its start-up heap once and collects its young generation less often."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from shared import runtime


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(runtime, "_heap_settled", False)
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_settle_heap_collects_then_freezes_once(fresh_process: None) -> None:
    dropped = Node()
    gone = weakref.ref(dropped)
    del dropped
    runtime.settle_heap()
    assert gone() is None  # collected, not frozen
    frozen = gc.get_freeze_count()
    assert frozen > 1000
    assert gc.get_threshold()[0] == runtime.GC_YOUNG_THRESHOLD
    kept = [Node() for _ in range(100)]
    runtime.settle_heap()  # a second start in the same process (tests): nothing more is frozen
    assert gc.get_freeze_count() == frozen
    del kept
