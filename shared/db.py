"""Database engines and the plumbing tables every service has: outbox, inbox, delivery failures.

Each service owns its own database and its own ``MetaData``; the plumbing tables are added to it
with :func:`plumbing_tables` so no service ever sees another's tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back time-zone aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: store times with a zone")
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_pragmas(dbapi_conn: Any, *extra: str) -> None:
    """The pragmas every connection to a service's SQLite database gets (WAL, busy timeout...)."""
    # Let SQLAlchemy, not the driver, decide when a transaction begins.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "busy_timeout=30000",
        "foreign_keys=ON",
        *extra,
    ):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


def _sqlite_engine(url: str, begin: str, *pragmas: str, **kwargs: Any) -> AsyncEngine:
    """A SQLite engine whose connections get the pragmas (WAL, busy timeout... and ``pragmas``) and
    whose transactions begin with ``begin`` (SQLAlchemy, not the driver, decides when)."""
    engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        sqlite_pragmas(dbapi_conn, *pragmas)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def make_read_engine(url: str) -> AsyncEngine | None:
    """For SQLite, a pool of read-only connections beside the one writer: in WAL mode readers
    neither wait for the writer nor make it wait, so a report or a list does not hold up the
    consumers. Each transaction is a read transaction: every read of one session sees the commit
    its first read saw (each statement on its own would see the last one). None elsewhere
    (PostgreSQL's pool serves both)."""
    if not is_sqlite(url):
        return None
    return _sqlite_engine(url, "BEGIN", "query_only=ON", pool_size=4, max_overflow=4)


def one_snapshot(session: Session) -> None:
    """Make the reads of ``session``'s transaction (to come: call it first) all see one state of
    the database, as a report made of several reads must. PostgreSQL's default (READ COMMITTED)
    shows each statement the last commit, so the transaction is REPEATABLE READ; SQLite's read
    engine (:func:`make_read_engine`) begins a transaction, whose snapshot is its first read's."""
    if session.get_bind().dialect.name != "postgresql":
        return
    if not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    elif session.connection().get_isolation_level() not in ("REPEATABLE READ", "SERIALIZABLE"):
        # Too late: its transaction has read in READ COMMITTED already (say so, not half a snapshot).
        raise RuntimeError("one_snapshot must come before the session's first read")


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` so that
    concurrent writers (replicas, relay, consumers) wait for each other instead of failing."""
    if not is_sqlite(url):
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 10)
        kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(url, **kwargs)

    # One connection per process: SQLite has one writer at a time anyway, and every transaction
    # here begins IMMEDIATE. With a pool of several, concurrent requests fight over the file
    # lock through SQLite's busy handler, which sleeps (up to 100 ms a try); one connection
    # makes them queue in asyncio instead, in order, with no sleeping. Other processes sharing
    # the file (replicas, the CLI) still meet the busy timeout.
    kwargs.setdefault("pool_size", 1)
    kwargs.setdefault("max_overflow", 0)
    kwargs.setdefault("pool_timeout", 60)
    return _sqlite_engine(url, "BEGIN IMMEDIATE", **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@dataclass(frozen=True)
class PlumbingTables:
    outbox: Table
    inbox: Table
    failures: Table


def plumbing_tables(metadata: MetaData) -> PlumbingTables:
    """Add the outbox, inbox and delivery-failure tables to a service's metadata (once)."""
    if "outbox" in metadata.tables:
        t = metadata.tables
        return PlumbingTables(t["outbox"], t["inbox"], t["delivery_failures"])
    outbox = Table(
        "outbox",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("subject", String(255), nullable=False),
        Column("headers", Text, nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("sent_at", UtcDateTime(), nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
    )
    Index("ix_outbox_unsent", outbox.c.sent_at, outbox.c.id)
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("applied_at", UtcDateTime(), nullable=False),
    )
    failures = Table(
        "delivery_failures",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("stream_seq", BigInteger, primary_key=True),
        Column("event_id", String(64), nullable=True),
        Column("error", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("last_failed_at", UtcDateTime(), nullable=False),
    )
    return PlumbingTables(outbox, inbox, failures)


async def create_schema(engine: AsyncEngine, metadata: MetaData) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


async def refresh_sqlite_statistics(engine: AsyncEngine) -> None:
    """Give SQLite's query planner row statistics (a sampled ``ANALYZE``; nothing on PostgreSQL,
    whose autovacuum does it). Without them SQLite guesses, and e.g. a caseworker's name search
    scanned every case of her province through the province index (10 ms per 6,000 cases)
    instead of looking up the few matching ids (0.1 ms)."""
    if engine.dialect.name != "sqlite":
        return
    async with engine.begin() as conn:
        await conn.run_sync(analyze)


def analyze(conn: Connection, tables: Sequence[str] = ()) -> None:
    """``ANALYZE`` the named tables (all without names), in the caller's transaction; on SQLite
    sampled (``analysis_limit``): fast on any size."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA analysis_limit=1000")
    for statement in [f'ANALYZE "{name}"' for name in tables] or ["ANALYZE"]:
        conn.exec_driver_sql(statement)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def increment(
    session: AsyncSession, table: Table, keys: dict[str, Any], column: str, delta: int
) -> None:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE SET column = column + delta`` on SQLite and PostgreSQL."""
    insert_fn = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert_fn(table).values(**keys, **{column: delta})
    await session.execute(
        stmt.on_conflict_do_update(index_elements=list(keys), set_={column: getattr(table.c, column) + delta})
    )
