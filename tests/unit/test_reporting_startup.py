"""The reporting process keeps its start-up objects out of full collections, and no garbage."""

from __future__ import annotations

import gc
import weakref

from services.reporting.app import freeze_startup_objects


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


async def test_start_up_objects_are_frozen_after_garbage_is_collected() -> None:
    dropped = Node()
    gone = weakref.ref(dropped)
    del dropped
    try:
        await freeze_startup_objects()
        assert gc.get_freeze_count() > 1000
        assert gone() is None  # collected, not frozen
    finally:
        gc.unfreeze()
