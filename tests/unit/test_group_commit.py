"""shared.groupcommit: requests that wait together are written together, in order, and one
refused or failing item never fails its neighbours."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from shared.groupcommit import GroupCommit


class Writer:
    """A batch writer that records its batches; ``gate`` holds a batch until set."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        await self.gate.wait()
        if 13 in items and len(items) > 1:
            raise RuntimeError("the database refused the batch")
        return [ValueError(f"{i} is odd") if i % 2 else i * 10 for i in items]


def group(writer: Writer) -> GroupCommit[int, int]:
    return GroupCommit(writer.write, service="test", name="numbers")


async def behind_a_batch(
    g: GroupCommit[int, int], w: Writer, items: tuple[int, ...]
) -> list[asyncio.Task[int]]:
    """Submit 0 and hold its batch, then submit ``items`` (they queue): [task of 0, *theirs]."""
    w.gate.clear()
    first = asyncio.create_task(g.submit(0))
    await asyncio.sleep(0.01)
    rest = [asyncio.create_task(g.submit(n)) for n in items]
    await asyncio.sleep(0.01)
    return [first, *rest]


async def test_an_unloaded_request_is_written_at_once_on_its_own() -> None:
    w = Writer()
    g = group(w)
    assert await g.submit(2) == 20
    assert await g.submit(4) == 40
    assert w.batches == [[2], [4]]


async def test_requests_that_wait_are_written_together_in_arrival_order() -> None:
    w = Writer()
    g = GroupCommit(w.write, service="test", name="in-order")
    tasks = await behind_a_batch(g, w, (2, 4, 6, 8))
    w.gate.set()
    assert [await t for t in tasks] == [0, 20, 40, 60, 80]
    assert w.batches == [[0], [2, 4, 6, 8]]
    # The metric says the same: 2 transactions, 5 items.
    labels = {"service": "test", "writer": "in-order"}
    assert REGISTRY.get_sample_value("osso_group_commit_items_count", labels) == 2
    assert REGISTRY.get_sample_value("osso_group_commit_items_sum", labels) == 5


async def test_a_refused_item_fails_alone() -> None:
    w = Writer()
    g = group(w)
    first, even, odd = await behind_a_batch(g, w, (2, 3))
    w.gate.set()
    assert await first == 0 and await even == 20
    with pytest.raises(ValueError, match="3 is odd"):
        await odd
    assert w.batches == [[0], [2, 3]]


async def test_a_failing_batch_is_written_again_item_by_item() -> None:
    w = Writer()
    g = group(w)
    first, *tasks = await behind_a_batch(g, w, (2, 13, 4))
    w.gate.set()
    await first
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == 20 and results[2] == 40
    assert isinstance(results[1], ValueError)  # 13 alone is written and refused on its own
    assert w.batches == [[0], [2, 13, 4], [2], [13], [4]]


async def test_a_request_cancelled_before_its_batch_is_not_written() -> None:
    w = Writer()
    g = group(w)
    first, gone, kept = await behind_a_batch(g, w, (2, 4))
    gone.cancel()
    await asyncio.sleep(0)
    w.gate.set()
    assert await first == 0 and await kept == 40
    assert w.batches == [[0], [4]]


async def test_batches_are_capped() -> None:
    w = Writer()
    g = GroupCommit(w.write, service="test", name="capped", max_batch=3)
    tasks = await behind_a_batch(g, w, (2, 4, 6, 8, 10))
    w.gate.set()
    await asyncio.gather(*tasks)
    assert w.batches == [[0], [2, 4, 6], [8, 10]]
