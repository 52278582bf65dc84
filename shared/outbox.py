"""The outbox relay: publishes committed events to JetStream and marks them sent after the ack.

A crash between publish and mark re-publishes the same event id later; the server's duplicate
window drops it and consumers skip ids they have applied, so the effect still happens once.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import orjson
from nats.js import JetStreamContext
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import PlumbingTables
from shared.lease import RelayLease, SoleLease
from shared.logs import get_logger
from shared.metrics import EVENTS_PUBLISHED, OUTBOX_LEADER, OUTBOX_PENDING

log = get_logger(__name__)

#: Published rows are kept this long for inspection, then deleted.
KEEP_SENT = timedelta(hours=1)


class OutboxRelay:
    def __init__(
        self,
        service: str,
        sessions: async_sessionmaker[AsyncSession],
        tables: PlumbingTables,
        js: JetStreamContext,
        *,
        poll_interval: float = 0.25,
        batch_size: int = 500,
        ack_timeout: float = 5.0,
        lease: RelayLease | None = None,
    ) -> None:
        self._service = service
        self._sessions = sessions
        self._table = tables.outbox
        self._js = js
        self._poll = poll_interval
        self._batch = batch_size
        self._ack_timeout = ack_timeout
        self._wake = asyncio.Event()
        self._stopped = False
        self._last_cleanup = datetime.now(UTC)
        self._lease = lease or SoleLease()
        self._lease.on_nudge(self.wake)
        #: Events this relay (not another process's) got acknowledged.
        self.published = 0
        #: Whether this relay holds the lease and publishes.
        self.leading = False

    @property
    def lease(self) -> RelayLease:
        return self._lease

    def wake(self) -> None:
        """Called after a commit that wrote events, so they leave without waiting for a poll."""
        self._wake.set()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.leading = False
            OUTBOX_LEADER.labels(self._service).set(0)
            await self._lease.release()

    async def _run(self) -> None:
        backoff = self._poll
        while not self._stopped:
            self.leading = await self._lease.acquire()
            OUTBOX_LEADER.labels(self._service).set(int(self.leading))
            if not self.leading:
                # A follower: tell the leader when this process commits events, and try for the
                # lease now and then in case the leader has gone.
                if await self._woken(self._lease.retry):
                    await self._lease.nudge()
                continue
            try:
                published = await self.publish_pending()
                backoff = self._poll
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox_publish_failed", error=type(exc).__name__, detail=str(exc)[:200])
                published = 0
                backoff = min(backoff * 2, 5.0)
            if published >= self._batch:
                continue  # more is waiting
            await self._woken(backoff)

    async def _woken(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for :meth:`wake`; True if it came."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        woken = self._wake.is_set()
        self._wake.clear()
        return woken

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows in order; return how many were acknowledged."""
        t = self._table
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(t.c.id, t.c.subject, t.c.headers, t.c.body)
                    .where(t.c.sent_at.is_(None))
                    .order_by(t.c.id)
                    .limit(self._batch)
                )
            ).all()
        if not rows:
            OUTBOX_PENDING.labels(self._service).set(0)
            await self._cleanup()
            return 0
        # Pipelined: messages leave in outbox order on one connection, acks are awaited together.
        futures = [
            await self._js.publish_async(r.subject, r.body, headers=orjson.loads(r.headers)) for r in rows
        ]
        results = await asyncio.gather(
            *(asyncio.wait_for(f, self._ack_timeout) for f in futures), return_exceptions=True
        )
        acked = [r.id for r, res in zip(rows, results, strict=True) if not isinstance(res, BaseException)]
        failed = [r.id for r, res in zip(rows, results, strict=True) if isinstance(res, BaseException)]
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            if acked:
                await session.execute(update(t).where(t.c.id.in_(acked)).values(sent_at=now))
            if failed:
                await session.execute(update(t).where(t.c.id.in_(failed)).values(attempts=t.c.attempts + 1))
        EVENTS_PUBLISHED.labels(self._service).inc(len(acked))
        self.published += len(acked)
        if failed:
            first = next(res for res in results if isinstance(res, BaseException))
            raise RuntimeError(f"{len(failed)} of {len(rows)} events not acknowledged: {first!r}")
        return len(acked)

    async def pending(self) -> int:
        t = self._table
        async with self._sessions() as session:
            count = (await session.execute(select(func.count()).where(t.c.sent_at.is_(None)))).scalar_one()
        OUTBOX_PENDING.labels(self._service).set(count)
        return int(count)

    async def drain(self, timeout: float = 10.0) -> None:
        """Publish until the outbox is empty (used at shutdown and in tests)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while await self.pending() and asyncio.get_running_loop().time() < deadline:
            try:
                await self.publish_pending()
            except Exception:
                await asyncio.sleep(0.1)

    async def _cleanup(self) -> None:
        now = datetime.now(UTC)
        if now - self._last_cleanup < timedelta(minutes=5):
            return
        self._last_cleanup = now
        t = self._table
        async with self._sessions() as session, session.begin():
            await session.execute(delete(t).where(t.c.sent_at < now - KEEP_SENT))
