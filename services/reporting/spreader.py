"""A rebuild's figures spread over their cells, and its cube written, in a process of its own.

Spreading figures (``rollup.Rollup.add``) costs about as much as applying the events that made
them, and much of it is Python (a code for each value of each figure) that holds the GIL: in a
thread beside the replay it slowed the replay by a third. Here the replay only pickles the figures
it kept (under a microsecond each) and a thread sends them; a child process spreads them on the
other core, and at the end writes the cube's rows into the fresh table itself, while the parent
writes the facts, cases and referrals, a chunk of rows a transaction. On SQLite the child's rows go
to a scratch file first and are copied in at the end, in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import pickle
import resource
import sqlite3
import time
import traceback
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from multiprocessing.connection import Connection as Pipe
from multiprocessing.synchronize import Lock
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Table, create_engine, event, make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateTable

from services.reporting.projections import Base
from services.reporting.rollup import LEVELS, Rollup
from services.reporting.store import analyze_tables, projection_tables, rekey, unkey, write_rows
from shared.db import make_engine, sqlite_pragmas
from shared.logs import get_logger

log = get_logger(__name__)

#: Cube rows the child makes at a time (and writes a transaction on PostgreSQL).
CHUNK = 200_000
#: On SQLite, up to this many cube rows are copied from the scratch file in one transaction (some
#: 7 s here); more, a roll-up level a transaction (:func:`_copy_in`).
AT_ONCE = 5_000_000


class SpreaderFailed(RuntimeError):
    """The child process failed (its traceback is the message) or ended before answering."""


class Spreader:
    """The parent's end: :meth:`add` figures as they are taken, then :meth:`write` the cube."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # no copy of the parent's threads and sockets
        self._pipe, child = context.Pipe()
        #: Whose turn it is to write, on SQLite (:meth:`turn`).
        self._turn = context.Lock()
        self._process = context.Process(
            target=_serve, args=(child, self._turn), name="osso-reporting-spreader", daemon=True
        )
        self._process.start()
        child.close()
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="spreader-send")
        self._sending: Future[None] | None = None
        self._scratch: Path | None = None
        #: The child's peak memory (MiB), once it has written the cube.
        self.peak_mib = 0.0

    def add(self, figures: Iterable[tuple[Base, int]]) -> None:
        """Send figures to be spread. Pickled here; sent by a thread once the previous ones were
        (so at most one batch waits while the child spreads another)."""
        data = pickle.dumps(("add", list(figures)), protocol=pickle.HIGHEST_PROTOCOL)
        self._sent()
        self._sending = self._sender.submit(self._pipe.send_bytes, data)

    async def write(self, database_url: str, suffix: str, chunk: int = CHUNK, at_once: int = AT_ONCE) -> int:
        """Have the child write every cell into the fresh cube ``rpt_cube<suffix>`` (indexed after
        its rows); returns how many rows."""
        self._scratch = scratch_file(database_url, suffix)
        await asyncio.to_thread(self._sent)
        await asyncio.to_thread(self._send, pickle.dumps(("write", database_url, suffix, chunk, at_once)))
        _, (rows, self.peak_mib) = await asyncio.to_thread(self._answer)
        return int(rows)

    @contextlib.asynccontextmanager
    async def turn(self, dialect: str) -> AsyncIterator[None]:
        """The parent's turn to write a transaction while the child writes the cube. On SQLite (one
        writer at a time) the two take turns at a lock of their own: waiting in SQLite's busy
        handler, which sleeps up to 100 ms a try, the one would miss most of the moments the
        other was preparing its next rows."""
        if dialect != "sqlite":
            yield
            return
        await asyncio.to_thread(self._acquire)
        try:
            yield
        finally:
            self._turn.release()

    def _acquire(self) -> None:
        while not self._turn.acquire(timeout=1.0):
            if not self._process.is_alive():  # it may have died holding the lock
                self._process.join()
                raise SpreaderFailed(f"the spreading process ended (exit code {self._process.exitcode})")

    def close(self) -> None:
        """End the child (at once if it is still writing: its transaction is rolled back); a
        thread waiting for its answer gets an end of file."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._sender.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(Exception):
            self._pipe.close()
        if self._scratch is not None:  # a child ended by a signal leaves its scratch file
            self._scratch.unlink(missing_ok=True)

    def _sent(self) -> None:
        if self._sending is not None:
            sending, self._sending = self._sending, None
            try:
                sending.result()
            except OSError:  # the child is gone: its answer says why
                self._answer()
                raise

    def _send(self, data: bytes) -> None:
        try:
            self._pipe.send_bytes(data)
        except OSError:
            self._answer()
            raise

    def _answer(self) -> tuple[str, Any]:
        try:
            kind, value = pickle.loads(self._pipe.recv_bytes())
        except (EOFError, OSError) as exc:
            self._process.join(5)  # its end of the pipe closes before it can be waited for
            raise SpreaderFailed(
                f"the spreading process ended (exit code {self._process.exitcode}) before it answered"
            ) from exc
        if kind == "error":
            raise SpreaderFailed(f"the spreading process failed:\n{value}")
        return kind, value


def _serve(pipe: Pipe, turn: Lock) -> None:
    """The child: spread each batch of figures as it comes; on ``write``, write the cube, answer
    and end. Any failure is answered with its traceback."""
    rollup = Rollup()
    try:
        while True:
            kind, *args = pickle.loads(pipe.recv_bytes())
            if kind == "add":
                rollup.add(args[0])
            elif kind == "write":
                rows = asyncio.run(_write_cube(rollup, turn, *args))
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
                pipe.send_bytes(pickle.dumps(("done", (rows, peak))))
                return
    except EOFError:  # the parent closed its end: nothing to answer
        return
    except BaseException:
        with contextlib.suppress(OSError):
            pipe.send_bytes(pickle.dumps(("error", traceback.format_exc())))


def scratch_file(database_url: str, suffix: str) -> Path | None:
    """Where the cube of the fresh tables ``rpt_*<suffix>`` is written first, on SQLite (a file
    beside the database); None elsewhere."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    database = Path(url.database)
    return database.with_name(f"{database.name}.rpt_cube{suffix}.scratch")


async def _write_cube(
    rollup: Rollup, turn: Lock, database_url: str, suffix: str, chunk: int, at_once: int
) -> int:
    """Write every cell into the fresh cube, its index (and on PostgreSQL its key) dropped before
    the rows and built after them (``store.unkey``/``rekey``, as for the parent's tables)."""
    table = projection_tables(MetaData(), suffix).cube
    scratch = scratch_file(database_url, suffix)
    engine = make_engine(database_url)
    # On SQLite the parent writes its tables meanwhile: each transaction here takes a turn.
    turns = turn if engine.dialect.name == "sqlite" else contextlib.nullcontext()
    written = 0
    try:
        with turns:
            async with engine.begin() as conn:
                dropped = await conn.run_sync(unkey, [table])
        if scratch is not None:
            written = _write_via_scratch(
                rollup, turn, Path(str(engine.url.database)), scratch, table, chunk, at_once
            )
        else:
            for rows in rollup.rows(chunk):
                async with engine.begin() as conn:
                    await conn.run_sync(write_rows, table, rows, add=False)
                written += len(rows[0]) + len(rows[1])
        with turns:
            async with engine.begin() as conn:
                await conn.run_sync(rekey, dropped)
                await conn.run_sync(analyze_tables, [table])
    finally:
        await engine.dispose()
    return written


def _write_via_scratch(
    rollup: Rollup, turn: Lock, database: Path, scratch: Path, table: Table, chunk: int, at_once: int
) -> int:
    """On SQLite the rows go to a scratch file first: no journal, and no lock shared with the
    parent writing its tables meanwhile (a third less a row than into the database's WAL). Then
    an ``INSERT ... SELECT`` copies them into the empty fresh table record by record (SQLite's
    transfer optimisation, which wants no index on either side: no row decoded, the B-tree
    appended; 1 µs a row against 3) (:func:`_copy_in`)."""
    scratch.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{scratch}", poolclass=NullPool)
    event.listen(engine, "connect", _no_journal)
    written = 0
    try:
        with engine.begin() as conn:
            conn.execute(CreateTable(table))  # without its index
            for rows in rollup.rows(chunk):
                write_rows(conn, table, rows, add=False)
                written += len(rows[0]) + len(rows[1])
        engine.dispose()
        _copy_in(turn, database, scratch, table, written, at_once)
    finally:
        engine.dispose()
        scratch.unlink(missing_ok=True)
    return written


def _copy_in(turn: Lock, database: Path, scratch: Path, table: Table, rows: int, at_once: int) -> None:
    """Copy the scratch file's rows into the fresh table: with one transfer if there are at most
    ``at_once``; else a roll-up level a transaction, in key order (plain inserts: 11.9 s against
    11.0 for 8.1M rows, but live consumers wait for one level at most, 6.9 s, not for all of
    them). A connection of its own: ATTACH cannot run inside a transaction."""
    name = table.name
    levels: Sequence[str | None] = [None] if rows <= at_once else sorted(LEVELS)
    copied = 0
    with closing(sqlite3.connect(database, timeout=30)) as db:
        sqlite_pragmas(db)
        db.execute("ATTACH DATABASE ? AS scratch", (str(scratch),))
        for level in levels:
            where, args = ("", ()) if level is None else (" WHERE level = ?", (level,))
            with turn:
                started = time.perf_counter()
                db.execute("BEGIN IMMEDIATE")
                copied += db.execute(
                    f'INSERT INTO main."{name}" SELECT * FROM scratch."{name}"{where}', args
                ).rowcount
                db.execute("COMMIT")
            # Live consumers waited for this transaction: say how long it took.
            log.info(
                "reporting_cube_copied",
                roll_up=level or "every level",  # (structlog's own "level" is the log level)
                seconds=round(time.perf_counter() - started, 2),
            )
        db.execute("DETACH DATABASE scratch")
    if copied != rows:  # a level not in LEVELS
        raise RuntimeError(f"copied {copied} of the {rows} cube rows written to {scratch}")


def _no_journal(dbapi_conn: Any, _record: Any) -> None:
    # A scratch file: lost with a crash, and the rebuild with it.
    for pragma in ("journal_mode=OFF", "synchronous=OFF"):
        dbapi_conn.execute(f"PRAGMA {pragma}")
