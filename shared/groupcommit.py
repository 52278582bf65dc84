"""Group commit: many small concurrent writes share one transaction.

A request that writes a few rows spends most of its time on per-statement and per-transaction
overhead (the driver's thread hop, statement compilation, BEGIN/COMMIT), not on the rows. Under
load, :class:`GroupCommit` writes the requests that are waiting together: the first one is written
at once (an unloaded service adds no latency, there is no timer); the ones that arrive meanwhile
are written by the next batch, in arrival order, in one transaction.

The batch writer returns one result per item: a value, or an exception for that item alone (a
refused item must not fail its neighbours). If the whole batch raises, each item is written again
on its own, so one bad item cannot fail the others.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from shared.metrics import GROUP_COMMIT_SIZE

In = TypeVar("In")
Out = TypeVar("Out")


class GroupCommit(Generic[In, Out]):
    def __init__(
        self,
        write: Callable[[list[In]], Awaitable[Sequence[Out | Exception]]],
        *,
        service: str,
        name: str,
        max_batch: int = 64,
    ) -> None:
        self._size = GROUP_COMMIT_SIZE.labels(service, name)
        self._write = write
        self._max_batch = max_batch
        self._queue: deque[tuple[In, asyncio.Future[Out]]] = deque()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        """Write ``item`` with whatever else is waiting; its result, or its exception raised.

        Cancelled before its batch starts, the item is not written; cancelled after, it is (as a
        request whose response is lost after the commit)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        self._queue.append((item, future))
        if self._task is None:
            # A fresh context: the batch belongs to no single request's trace or logging context.
            self._task = loop.create_task(self._drain(), context=contextvars.Context())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch: list[tuple[In, asyncio.Future[Out]]] = []
                while self._queue and len(batch) < self._max_batch:
                    item, future = self._queue.popleft()
                    if not future.cancelled():
                        batch.append((item, future))
                if batch:
                    await self._write_batch(batch)
        except BaseException as exc:  # cancelled at shutdown: nobody waits forever
            for _, future in self._queue:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            self._queue.clear()
            raise
        finally:
            self._task = None

    async def _write_batch(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        self._size.observe(len(batch))
        try:
            outcomes = await self._outcomes([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # its request was cancelled meanwhile
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def _outcomes(self, items: list[In]) -> list[Out | Exception]:
        try:
            outcomes = list(await self._write(items))
        except Exception as exc:
            if len(items) == 1:
                return [exc]
            # Find the item that fails: each on its own, in order.
            return [outcome for item in items for outcome in await self._outcomes([item])]
        if len(outcomes) != len(items):
            error = RuntimeError(f"batch writer gave {len(outcomes)} outcomes for {len(items)} items")
            return [error] * len(items)
        return outcomes
