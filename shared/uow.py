"""Unit of work: one database transaction that holds a state change and the events it caused.

Commit is where events leave: :meth:`UnitOfWork.emit` only buffers; the events are written to the
outbox inside the same transaction, and the relay publishes them after the commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import orjson
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import PlumbingTables
from shared.envelope import encode
from shared.events import Event
from shared.telemetry import inject_headers


def outbox_rows(*events: Event) -> list[dict[str, object]]:
    """The outbox rows of ``events``, each encoded now with the current trace context, so the
    trace links to the span that caused it even though the row is written later."""
    now = datetime.now(UTC)
    rows: list[dict[str, object]] = []
    for event in events:
        message = encode(event, time=now)
        headers = inject_headers(dict(message.headers))
        rows.append(
            {
                "event_id": message.event_id,
                "subject": message.subject,
                "headers": orjson.dumps(headers).decode(),
                "body": message.body,
                "created_at": now,
                "attempts": 0,
            }
        )
    return rows


class UnitOfWork:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        tables: PlumbingTables,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._tables = tables
        self._on_commit = on_commit
        self._pending: list[dict[str, object]] = []
        self._emitted = 0
        self.session: AsyncSession

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        await self.session.begin()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self.session.in_transaction():
                await self.session.rollback()
        finally:
            await self.session.close()

    def emit(self, *events: Event) -> None:
        """Record events to publish if, and only if, this unit of work commits."""
        self._pending.extend(outbox_rows(*events))

    def emit_rows(self, rows: list[dict[str, object]]) -> None:
        """Record events already encoded by :func:`outbox_rows` (e.g. in the request that caused
        them, when a group commit writes them later)."""
        self._pending.extend(rows)

    async def flush_events(self) -> None:
        """Write buffered events to the outbox (inside the current transaction)."""
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        self._emitted += len(rows)
        await self.session.execute(insert(self._tables.outbox), rows)

    def discard_events(self) -> None:
        self._pending.clear()

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction: on error its changes and its events are both dropped."""
        nested = await self.session.begin_nested()
        try:
            yield
            await self.flush_events()
        except BaseException:
            self.discard_events()
            await nested.rollback()
            raise
        else:
            await nested.commit()

    async def commit(self) -> None:
        await self.flush_events()
        await self.session.commit()
        if self._emitted:
            self._emitted = 0
            self._on_commit()
