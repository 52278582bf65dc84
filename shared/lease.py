"""Which process's outbox relay publishes, when several processes share one service database.

Replicas and uvicorn workers of a service each run a relay. Without a lease, each one publishes
every unsent row: JetStream drops the copies by event id, so nothing happens twice, but the
publishing and the marking are done once per process, and the copies race to mark the same rows.
With a lease, one process (the leader) publishes and the others wait to take over:

- PostgreSQL: a session-level advisory lock on a dedicated connection. If the leader dies, its
  connection closes, the server releases the lock and another process takes it within
  ``retry`` seconds. Followers tell the leader about their commits with ``NOTIFY``, so their
  events leave at once rather than at the leader's next poll.
- SQLite: an exclusive ``flock`` on a file beside the database, released by the kernel when the
  process dies. Followers' commits are picked up at the leader's next poll.
- Anything else (an in-memory database, another driver): this process is always the leader,
  which is the right answer for a single process.

The lease is an optimisation, not what keeps an event from being applied twice: a leader that has
lost its lease may still finish the batch it was publishing, and the duplicate window and the
consumers' inboxes absorb that.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import URL

from shared.logs import get_logger

log = get_logger(__name__)


class RelayLease(Protocol):
    #: Seconds between a follower's attempts to take the lease.
    retry: float

    async def acquire(self) -> bool:
        """True if this process holds the lease (taking it if it is free)."""

    async def nudge(self) -> None:
        """Tell the leader that this follower committed events (best effort)."""

    def on_nudge(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` in the leader when a follower nudges."""

    async def release(self) -> None: ...


class SoleLease:
    """One process: always the leader."""

    retry = 1.0

    async def acquire(self) -> bool:
        return True

    async def nudge(self) -> None:
        return None

    def on_nudge(self, callback: Callable[[], None]) -> None:
        return None

    async def release(self) -> None:
        return None


class FileLease:
    """An exclusive ``flock`` on ``path``: held while the file descriptor is open."""

    def __init__(self, path: Path, *, retry: float = 1.0) -> None:
        self.path = path
        self.retry = retry
        self._fd: int | None = None

    async def acquire(self) -> bool:
        if self._fd is not None:
            return True
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        log.info("outbox_lease_acquired", lease="file")
        return True

    async def nudge(self) -> None:
        return None  # the leader polls the file's outbox

    def on_nudge(self, callback: Callable[[], None]) -> None:
        return None

    async def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock`` (``hash()`` varies per process)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class AdvisoryLease:
    """A PostgreSQL advisory lock held by a dedicated asyncpg connection (not from the pool: a
    pooled connection would sit idle in a transaction or be recycled, losing the lock)."""

    def __init__(self, dsn: str, name: str, *, retry: float = 1.0, check_every: float = 5.0) -> None:
        self._dsn = dsn
        self._key = advisory_key(f"osso-outbox:{name}")
        self._channel = f"osso_outbox_{name}"
        self.retry = retry
        self._check_every = check_every
        self._conn: Any = None
        self._held = False
        self._checked = 0.0
        self._tried = -float("inf")
        self._callback: Callable[[], None] | None = None

    def on_nudge(self, callback: Callable[[], None]) -> None:
        self._callback = callback

    @property
    def backend_pid(self) -> int | None:
        """The server process of the lease's connection (what an operator would terminate)."""
        return None if self._conn is None or self._conn.is_closed() else int(self._conn.get_server_pid())

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            import asyncpg

            self._conn = await asyncpg.connect(self._dsn, timeout=5)
        return self._conn

    async def acquire(self) -> bool:
        if self._held and self._conn.is_closed():  # the server or the network closed it
            log.warning("outbox_lease_lost", lease="advisory", error="connection closed")
            await self._drop()
        try:
            conn = await self._connection()
            if self._held:
                # A broken connection has lost the lock; find out now and then, not on every batch.
                if time.monotonic() - self._checked > self._check_every:
                    await conn.fetchval("SELECT 1", timeout=5)
                    self._checked = time.monotonic()
                return True
            if time.monotonic() - self._tried < self.retry:
                return False  # a follower woken by its own commits: not a query per commit
            self._tried = time.monotonic()
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key, timeout=5):
                return False
            await conn.add_listener(self._channel, self._nudged)
        except Exception as exc:
            if self._held:
                log.warning("outbox_lease_lost", lease="advisory", error=type(exc).__name__)
            await self._drop()
            return False
        self._held = True
        self._checked = time.monotonic()
        log.info("outbox_lease_acquired", lease="advisory")
        return True

    def _nudged(self, *_args: Any) -> None:
        if self._callback is not None:
            self._callback()

    async def nudge(self) -> None:
        with contextlib.suppress(Exception):  # the leader polls anyway
            conn = await self._connection()
            await conn.execute(f'NOTIFY "{self._channel}"', timeout=5)

    async def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def release(self) -> None:
        await self._drop()  # closing the session releases its advisory locks


def relay_lease(url: URL, service: str) -> RelayLease:
    """The lease for ``service``'s relay on the database at ``url`` (see the module docstring)."""
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file::memory"):
            return SoleLease()
        return FileLease(Path(f"{url.database}-outbox.lock"))
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "asyncpg":
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return AdvisoryLease(dsn, service)
    return SoleLease()
