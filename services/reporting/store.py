"""Reporting's tables: keyed facts and aggregates, never a case id in clear or any text about a woman.

The projection tables come in sets (:func:`projection_tables`): the live set has the plain names,
``osso reporting rebuild`` fills a fresh set (names with a suffix) and then swaps the names in one
transaction. The audit table is not a projection and is never rebuilt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import chain, islice
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement
from sqlalchemy.util import await_only

from services.reporting.domain import (
    join_pairs,
    parse_pairs,
)
from services.reporting.projections import (
    DIMENSIONS,
    PENDING,
    RANGE_KINDS,
    CaseDims,
    Cell,
    Fact,
    Key,
    MemoryState,
    ReferralTimes,
    Spreads,
    previous_days,
)
from services.reporting.rollup import DeferredState, Row, cell_rows
from shared.db import UtcDateTime, analyze

metadata = MetaData()

#: A histogram row is compacted (its pairs merged by day) once this many writes appended to it.
COMPACT_AFTER = 16

CELL_COLUMNS = (
    "period",
    "province",
    "category",
    "channel",
    "migration_kind",
    "return_kind",
    "age_band",
    "metric",
)


@dataclass(frozen=True)
class ProjectionTables:
    cube: Table
    facts: Table
    cases: Table
    referrals: Table
    pending: Table

    def all(self) -> tuple[Table, ...]:
        return (self.cube, self.facts, self.cases, self.referrals, self.pending)


def _cell_columns(primary_key: bool = True) -> list[Column[Any]]:
    widths = {"period": 40, "province": 2, "category": 32, "metric": 40}
    return [Column(name, String(widths.get(name, 32)), primary_key=primary_key) for name in CELL_COLUMNS]


def range_facts(kind: ColumnElement[str]) -> ColumnElement[bool]:
    """``kind = 'session' OR kind = 'completed'`` with the kinds written out: the predicate of the
    partial fact indexes. A query must say it word for word, or one kind as a literal, for SQLite
    to use them (it does not look into bound values)."""
    return or_(*(kind == literal_column(f"'{name}'") for name in RANGE_KINDS))


def projection_tables(md: MetaData, suffix: str = "") -> ProjectionTables:
    """The projection tables named ``rpt_<name><suffix>`` on ``md``."""
    # WITHOUT ROWID on SQLite: the primary key index is the table, so each row is written once.
    cube = Table(
        f"rpt_cube{suffix}",
        md,
        Column("level", String(16), primary_key=True),
        *_cell_columns(),
        Column("value", BigInteger, nullable=False),
        # A histogram of days (metric ``d2a:``/``d2c:``, value = how many referrals) is one row with
        # its ``days count`` pairs, not a row per day (most of a report's rows before): see
        # :func:`increment_cells`. ``appends``: how many writes added pairs since it was compacted.
        Column("pairs", Text, nullable=True),
        Column("appends", Integer, nullable=False, server_default="0"),
        sqlite_with_rowid=False,
    )
    # The histograms due for compaction (few: each is compacted by the next write after 16 appends).
    due = cube.c.appends >= literal_column(str(COMPACT_AFTER))
    Index(f"ix_rpt_cube{suffix}_due", cube.c.appends, sqlite_where=due, postgresql_where=due)
    facts = Table(
        f"rpt_fact{suffix}",
        md,
        Column("key", String(200), primary_key=True),
        Column("kind", String(16), nullable=False),
        Column("case_hash", String(32), nullable=False),
        Column("province", String(2), nullable=False),
        Column("day", Date, nullable=False),
        Column("category", String(32), nullable=False),
        # Her fact of this kind and province just before this one (and of this category too), for
        # sessions and completed referrals (``projections.previous_days``): None for her first.
        Column("previous_day", Date, nullable=True),
        Column("previous_category_day", Date, nullable=True),
        # Her case's categories (``?`` until her case.opened is seen), on range facts only, so that
        # a distinct count over days grouped or filtered by one needs no lookup of her case.
        *(Column(name, String(32), nullable=True) for name in DIMENSIONS),
        sqlite_with_rowid=False,
    )
    # A distinct count over a day range that is no kept period subtracts, from her facts in it
    # (counted per day in the cube, ``domain.FACT_COUNT``), those whose previous fact is in it too:
    # these indexes find them: a seek per (previous day, kind) in the range (distinct_rows names
    # each day), then its days up to the range's end, covering what the count is grouped or
    # filtered by. Sessions and completed referrals with a previous one only; for the previous
    # day of the same category, completed referrals only. Why this order, found by the plan test
    # once ANALYZE had run: led by (kind, province), SQLite read one index for the other's query
    # (no seek on the previous day); with the province before the day, it read past the range's
    # end rather than seek each province; with first facts in (NULL previous day, most completed
    # referrals in their category), it took the previous day for unselective and scanned.
    repeats = and_(range_facts(facts.c.kind), facts.c.previous_day.is_not(None))
    category_repeats = and_(
        facts.c.kind == literal_column("'completed'"), facts.c.previous_category_day.is_not(None)
    )
    Index(
        f"ix_rpt_fact{suffix}_previous",
        facts.c.previous_day,
        facts.c.kind,
        facts.c.day,
        facts.c.province,
        *(facts.c[name] for name in DIMENSIONS),
        sqlite_where=repeats,
        postgresql_where=repeats,
    )
    Index(
        f"ix_rpt_fact{suffix}_previous_category",
        facts.c.previous_category_day,
        facts.c.kind,
        facts.c.day,
        facts.c.province,
        facts.c.category,
        *(facts.c[name] for name in DIMENSIONS),
        sqlite_where=category_repeats,
        postgresql_where=category_repeats,
    )
    # A woman's facts, to set the previous days when one of hers is added (link_facts); covering,
    # so that the planner takes it over the index above even without statistics (a fresh rebuild).
    Index(
        f"ix_rpt_fact{suffix}_case",
        facts.c.case_hash,
        facts.c.kind,
        facts.c.province,
        facts.c.day,
        facts.c.category,
        facts.c.previous_day,
        facts.c.previous_category_day,
        *(facts.c[name] for name in DIMENSIONS),
        sqlite_where=range_facts(facts.c.kind),
        postgresql_where=range_facts(facts.c.kind),
    )
    cases = Table(
        f"rpt_case{suffix}",
        md,
        Column("case_hash", String(32), primary_key=True),
        Column("province", String(2), nullable=False),
        Column("channel", String(32), nullable=False),
        Column("migration_kind", String(32), nullable=False),
        Column("return_kind", String(32), nullable=False),
        Column("age_band", String(32), nullable=False),
    )
    referrals = Table(
        f"rpt_referral{suffix}",
        md,
        Column("referral_hash", String(32), primary_key=True),
        Column("province", String(2), nullable=False),
        Column("category", String(32), nullable=False),
        Column("case_hash", String(32), nullable=False),
        Column("requested_at", UtcDateTime(), nullable=True),
        Column("accepted_at", UtcDateTime(), nullable=True),
        Column("completed_at", UtcDateTime(), nullable=True),
    )
    pending = Table(
        f"rpt_pending{suffix}",
        md,
        Column("case_hash", String(32), primary_key=True),
        *_cell_columns(),
        Column("delta", BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    return ProjectionTables(cube, facts, cases, referrals, pending)


LIVE = projection_tables(metadata)
#: The walking skeleton's name for the figures table.
counts = LIVE.cube

#: The layout of the projection tables, and what they hold; tables of an older one are rebuilt from
#: the streams before the consumers start (``rebuild.ensure_layout``). 1: the first; 2: facts
#: carry their previous days, additive figures are kept per year; 3: range facts carry her case's
#: categories; 4: a histogram of days is one row with its pairs; 5: range facts counted per day
#: (``domain.FACT_COUNT``), facts indexed by their previous day; 6: days kept per case category
#: alone too, facts indexed by each previous day, first facts left out of those indexes; 7: weeks
#: kept (additive figures and fact counts), but not with all four case categories.
LAYOUT = 7
layout = Table("rpt_layout", metadata, Column("version", Integer, primary_key=True, autoincrement=False))


def layout_state(conn: Connection) -> str:
    """``current``; ``empty`` (no figure or fact yet: any layout is recreated at no cost); or
    ``outdated`` (figures of an older layout, or of none recorded)."""
    if conn.execute(select(layout.c.version)).scalars().all() == [LAYOUT]:
        return "current"
    for table in (LIVE.cube, LIVE.facts):
        if conn.execute(select(table.c[0]).limit(1)).first() is not None:
            return "outdated"
    return "empty"


def stamp_layout(conn: Connection) -> None:
    """Record that the live projection tables have the current layout."""
    conn.execute(delete(layout))
    conn.execute(insert(layout).values(version=LAYOUT))


def recreate_empty(conn: Connection) -> None:
    """Drop and create the (empty) live projection tables in the current layout, and stamp it."""
    for table in LIVE.all():
        table.drop(conn)
        table.create(conn)
    stamp_layout(conn)


audit = Table(
    "rpt_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("role", String(32), nullable=False),
    Column("action", String(40), nullable=False),
    Column("query", Text, nullable=False),
    Column("exact", Boolean, nullable=False),
)


def _insert(conn: Connection | Session, table: Table) -> Any:
    dialect = conn.get_bind().dialect.name if isinstance(conn, Session) else conn.dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


def _increment_rows(
    session: Session | Connection, table: Table, keys: Sequence[str], column: str, rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    stmt = _insert(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={column: getattr(table.c, column) + stmt.excluded[column]}
    )
    session.execute(stmt, rows)


#: Rows a statement inserts on SQLite: handing rows over costs more than the B-tree, and a statement
#: of 50 rows costs a third less a row than one of one (one step and reset for 50).
ROWS_PER_STATEMENT = 50


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], tail: str = ""
) -> None:
    """Insert ``rows`` (values of ``columns``) into ``table``, followed by ``tail`` (an upsert's
    ``ON CONFLICT``), with no per-row SQL construction. On SQLite with one driver-level
    ``executemany`` of :data:`ROWS_PER_STATEMENT` rows a statement; on PostgreSQL with asyncpg's
    binary ``COPY`` when there is no ``tail`` (a tenth of the time of its ``executemany``, which
    still runs a statement per row), else its ``executemany``. Rows must have distinct keys when
    ``tail`` is an upsert (so must they for PostgreSQL's, anyway)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql" and not tail and conn.dialect.driver == "asyncpg":
        copy = conn.connection.driver_connection.copy_records_to_table  # type: ignore[union-attr]
        await_only(copy(table.name, records=rows, columns=list(columns), schema_name=table.schema))
        return
    head = f'INSERT INTO "{table.name}" ({", ".join(columns)})'
    marks = ", ".join(_placeholders(conn, len(columns)))
    k = ROWS_PER_STATEMENT if conn.dialect.name == "sqlite" else 1
    whole = len(rows) // k * k
    if whole and k > 1:
        many = f"{head} VALUES {', '.join([f'({marks})'] * k)}{tail}"
        conn.exec_driver_sql(many, [tuple(chain.from_iterable(rows[i : i + k])) for i in range(0, whole, k)])
    else:
        whole = 0
    if whole < len(rows):
        conn.exec_driver_sql(f"{head} VALUES ({marks}){tail}", [tuple(row) for row in rows[whole:]])


def _placeholders(conn: Connection, n: int) -> list[str]:
    style = conn.dialect.paramstyle
    if style == "qmark":
        return ["?"] * n
    if style in ("numeric_dollar",):
        return [f"${i}" for i in range(1, n + 1)]
    if style == "numeric":
        return [f":{i}" for i in range(1, n + 1)]
    return ["%s"] * n


def increment_cells(conn: Connection, table: Table, cells: Iterable[tuple[Cell, int]]) -> None:
    """Add to cube cells with one driver-level ``executemany`` (no per-row SQL construction:
    a batch or a rebuild writes hundreds of thousands of cells), in key order (B-tree locality).
    A histogram's new pairs are appended to its row's, in the upsert itself (so replicas writing at
    once lose nothing), and rows appended to often enough are compacted (:func:`compact_histograms`)."""
    if write_rows(conn, table, cell_rows(cells), add=True):
        compact_histograms(conn, table)


def write_rows(conn: Connection, table: Table, rows: tuple[list[Row], list[Row]], *, add: bool) -> bool:
    """Write cube rows (plain, histograms): with ``add``, added to the rows there may be; else as
    new rows (no conflict check per row). Returns whether any histogram was written."""
    plain, histograms = rows
    names = ", ".join(("level", *CELL_COLUMNS))
    t = f'"{table.name}"'
    upsert = f" ON CONFLICT ({names}) DO UPDATE SET value = {t}.value + excluded.value" if add else ""
    columns = ("level", *CELL_COLUMNS, "value")  # a new row's appends: 0, its default
    insert_rows(conn, table, columns, plain, upsert)
    if histograms:
        # A row compacted to no pair holds NULL, but one written before that rule may hold ''.
        append = f", pairs = COALESCE(NULLIF({t}.pairs, '') || ',', '') || excluded.pairs, appends = {t}.appends + 1"
        insert_rows(conn, table, (*columns, "pairs"), histograms, upsert + (append if add else ""))
    return bool(histograms)


def compact_histograms(conn: Connection, table: Table, limit: int = 1000) -> int:
    """Merge the pairs (by day) of up to ``limit`` histogram rows appended to ``COMPACT_AFTER``
    times or more, so that no row's pairs grow without end; returns how many. On PostgreSQL rows
    another replica is writing are skipped (one of the next writes compacts them): never a wait."""
    t = table.c
    key = [t.level, *(t[name] for name in CELL_COLUMNS)]
    found = select(*key, t.pairs).where(t.appends >= literal_column(str(COMPACT_AFTER))).limit(limit)
    if conn.dialect.name == "postgresql":
        found = found.with_for_update(skip_locked=True)
    rows = conn.execute(found).all()
    if rows:
        conn.execute(
            update(table)
            .where(*(column == bindparam(f"k_{column.name}") for column in key))
            .values(pairs=bindparam("merged"), appends=0),
            [
                {
                    **{f"k_{column.name}": row[i] for i, column in enumerate(key)},
                    # NULL when its days net to nothing (figures moved away): '' would be
                    # appended to as ",3 1" and concatenated with others as ",,".
                    "merged": join_pairs(parse_pairs(row[-1] or "")) or None,
                }
                for row in rows
            ],
        )
    return len(rows)


def fact_dims(fact: Fact, case: Callable[[str], CaseDims | None]) -> tuple[str | None, ...]:
    """The case categories a fact row keeps: her case's (``case`` looks it up) on a range fact,
    ``?`` while her case is not known; none on the others (no report reads them by category)."""
    if fact.kind not in RANGE_KINDS:
        return (None, None, None, None)
    dims = case(fact.case_hash)
    return (PENDING, PENDING, PENDING, PENDING) if dims is None else dims[1:]


FACT_COLUMNS = (
    "key", "kind", "case_hash", "province", "day", "category", "previous_day", "previous_category_day",
    *DIMENSIONS,
)  # fmt: skip


def fact_rows(
    facts: Mapping[str, Fact],
    previous: Mapping[str, tuple[date | None, date | None]] | None = None,
    case: Callable[[str], CaseDims | None] = lambda case_hash: None,
    chunk: int = 100_000,
) -> Iterator[list[tuple[Any, ...]]]:
    """Rows of new facts (:data:`FACT_COLUMNS`) in key order, ``chunk`` at a time (a rebuild's are
    tens of millions: their rows all at once were most of its peak memory), with their previous
    days if known (else None: :func:`link_facts` sets them) and the categories ``case`` gives of
    her case (:func:`link_facts` sets them when her case is opened later)."""
    none = (None, None)
    keys = sorted(facts)
    for start in range(0, len(keys), chunk):
        yield [
            (key, *fact, *(previous.get(key, none) if previous else none), *fact_dims(fact, case))
            for key in keys[start : start + chunk]
            for fact in (facts[key],)
        ]


def insert_facts(
    conn: Connection,
    table: Table,
    facts: Mapping[str, Fact],
    previous: Mapping[str, tuple[date | None, date | None]] | None = None,
    case: Callable[[str], CaseDims | None] = lambda case_hash: None,
    chunk: int = 100_000,
) -> None:
    """Insert new facts (:func:`fact_rows`)."""
    for rows in fact_rows(facts, previous, case, chunk):
        insert_rows(conn, table, FACT_COLUMNS, rows)


def link_facts(
    conn: Session | Connection, table: Table, case_hashes: Iterable[str], cases: Table | None = None
) -> None:
    """Set the previous days (``projections.previous_days``) of the range facts of these women
    after some of theirs were added (a new fact can come before, between or after hers), and with
    ``cases``, their case's categories (``?`` on facts counted before her case was known)."""
    f = table.c
    dialect = conn.get_bind().dialect.name if isinstance(conn, Session) else conn.dialect.name
    for hashes in chunks(sorted(set(case_hashes))):
        if dialect == "postgresql":
            # Replicas may add facts of one woman at once, or open her case while another counts a
            # fact of hers: the second links hers after the first commits, and then reads its facts
            # and her case too (read committed). In order: no deadlock.
            for case_hash in hashes:
                conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(case_hash, 0))))
        rows = conn.execute(
            select(
                f.key, f.kind, f.case_hash, f.province, f.day, f.category, f.previous_day,
                f.previous_category_day, *(f[name] for name in DIMENSIONS),
            ).where(f.case_hash.in_(hashes), range_facts(f.kind))
        ).all()  # fmt: skip
        known: dict[str, CaseDims] = {}
        if cases is not None:
            c = cases.c
            found = conn.execute(
                select(c.case_hash, c.province, *(c[name] for name in DIMENSIONS)).where(
                    c.case_hash.in_(hashes)
                )
            )
            known = {row[0]: CaseDims(*row[1:]) for row in found}
        wanted = previous_days((row[0], Fact(*row[1:6])) for row in rows)
        changed = []
        for row in rows:
            days = wanted[row[0]]
            dims = fact_dims(Fact(*row[1:6]), known.get) if cases is not None else tuple(row[8:])
            if (row[6], row[7]) != days or tuple(row[8:]) != dims:
                named = {f"d_{n}": value for n, value in zip(DIMENSIONS, dims, strict=True)}
                changed.append({"k": row[0], "p": days[0], "pc": days[1], **named})
        if changed:
            conn.execute(
                update(table)
                .where(f.key == bindparam("k"))
                .values(
                    previous_day=bindparam("p"),
                    previous_category_day=bindparam("pc"),
                    **{name: bindparam(f"d_{name}") for name in DIMENSIONS},
                ),
                changed,
            )


def chunks(items: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    """``items`` in slices of ``size`` (an IN list of bound values each)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _cell_dict(cell: Cell) -> dict[str, str]:
    return dict(zip(CELL_COLUMNS, cell, strict=True))


class SqlState(Spreads):
    """The projection's state in the database, read on demand inside one transaction (a sync
    session run with ``AsyncSession.run_sync``); figures are buffered and written by :meth:`flush`."""

    def __init__(self, session: Session | Connection, tables: ProjectionTables = LIVE) -> None:
        self.s = session
        self.t = tables
        self._cases: dict[str, CaseDims | None] = {}
        self._cube: Counter[Cell] = Counter()
        self._pending: dict[str, Counter[Cell]] = {}
        self._cleared: set[str] = set()
        self._linked: set[str] = set()  # women with a new range fact

    def claim(self, key: str, fact: Fact) -> bool:
        dims = fact_dims(fact, self.case)
        values = {"key": key, **fact._asdict(), **dict(zip(DIMENSIONS, dims, strict=True))}
        stmt = _insert(self.s, self.t.facts).values(**values).on_conflict_do_nothing()
        claimed = bool(self.s.execute(stmt).rowcount)  # type: ignore[attr-defined]
        if claimed and fact.kind in RANGE_KINDS:
            self._linked.add(fact.case_hash)
        return claimed

    def case(self, case_hash: str) -> CaseDims | None:
        if case_hash not in self._cases:
            c = self.t.cases.c
            row = self.s.execute(
                select(c.province, c.channel, c.migration_kind, c.return_kind, c.age_band).where(
                    c.case_hash == case_hash
                )
            ).first()
            self._cases[case_hash] = CaseDims(*row) if row else None
        return self._cases[case_hash]

    def put_case(self, case_hash: str, dims: CaseDims) -> None:
        self._cases[case_hash] = dims
        stmt = _insert(self.s, self.t.cases).values(case_hash=case_hash, **dims._asdict())
        self.s.execute(stmt.on_conflict_do_nothing())
        self._linked.add(case_hash)  # her facts counted before get her categories

    def referral(self, referral_hash: str) -> ReferralTimes | None:
        c = self.t.referrals.c
        row = self.s.execute(
            select(c.province, c.category, c.case_hash, c.requested_at, c.accepted_at, c.completed_at).where(
                c.referral_hash == referral_hash
            )
        ).first()
        return ReferralTimes(*row) if row else None

    def put_referral(self, referral_hash: str, times: ReferralTimes) -> None:
        values = {
            "province": times.province,
            "category": times.category,
            "case_hash": times.case_hash,
            "requested_at": times.requested_at,
            "accepted_at": times.accepted_at,
            "completed_at": times.completed_at,
        }
        stmt = _insert(self.s, self.t.referrals).values(referral_hash=referral_hash, **values)
        self.s.execute(stmt.on_conflict_do_update(index_elements=["referral_hash"], set_=values))

    def pending(self, case_hash: str) -> list[tuple[Key, int]]:
        p = self.t.pending
        rows = self.s.execute(
            select(*(p.c[n] for n in CELL_COLUMNS), p.c.delta).where(p.c.case_hash == case_hash)
        )
        found: Counter[Cell] = Counter({tuple(row[:8]): row[8] for row in rows})  # type: ignore[misc]
        found.update(self._pending.get(case_hash, Counter()))
        return list(found.items())

    def add_pending(self, case_hash: str, cell: Cell, delta: int) -> None:
        self._pending.setdefault(case_hash, Counter())[cell] += delta

    def clear_pending(self, case_hash: str) -> None:
        self._pending.pop(case_hash, None)
        self.s.execute(delete(self.t.pending).where(self.t.pending.c.case_hash == case_hash))

    def bump(self, key: Key, delta: int) -> None:
        self._cube[key] += delta  # type: ignore[index]  # a cell: this state keeps cells

    def bump_all(self, cells: list[Cell], delta: int) -> None:
        for cell in cells:
            self._cube[cell] += delta

    def flush(self) -> None:
        increment_cells(
            self.s.connection() if isinstance(self.s, Session) else self.s, self.t.cube, self._cube.items()
        )
        pending = [
            {"case_hash": h, **_cell_dict(cell), "delta": d}
            for h, cells in self._pending.items()
            for cell, d in cells.items()
            if d
        ]
        _increment_rows(self.s, self.t.pending, ("case_hash", *CELL_COLUMNS), "delta", pending)
        link_facts(self.s, self.t.facts, self._linked, self.t.cases)
        self._cube.clear()
        self._pending.clear()
        self._linked.clear()


@dataclass
class Unkeyed:
    """What :func:`unkey` dropped from tables about to be loaded, for :func:`rekey` to build."""

    indexes: list[Index]
    #: PostgreSQL: each table's primary key constraint, by name.
    keys: dict[Table, str]


def unkey(conn: Connection, tables: Sequence[Table]) -> Unkeyed:
    """Before loading rows into new tables: drop their secondary indexes, and on PostgreSQL their
    primary keys too, for :func:`rekey` to build from the rows at the end (a sort: about half the
    cost of keeping them up to date row by row). SQLite's WITHOUT ROWID tables are their primary
    key. The rows may be loaded over several transactions (:mod:`spreader`)."""
    indexes = [index for table in tables for index in table.indexes]
    for index in indexes:
        index.drop(conn)
    keys: dict[Table, str] = {}
    for table in tables if conn.dialect.name == "postgresql" else ():
        keys[table] = conn.exec_driver_sql(
            f"SELECT conname FROM pg_constraint WHERE conrelid = CAST({_placeholders(conn, 1)[0]} AS regclass)"
            " AND contype = 'p'",
            (f'"{table.name}"',),
        ).scalar_one()
        conn.exec_driver_sql(f'ALTER TABLE "{table.name}" DROP CONSTRAINT "{keys[table]}"')
    return Unkeyed(indexes, keys)


def rekey(conn: Connection, dropped: Unkeyed) -> None:
    """Build what :func:`unkey` dropped."""
    for table, name in dropped.keys.items():
        columns = ", ".join(f'"{column.name}"' for column in table.primary_key)
        conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD CONSTRAINT "{name}" PRIMARY KEY ({columns})')
    for index in dropped.indexes:
        index.create(conn)


def analyze_tables(conn: Connection, tables: Sequence[Table]) -> None:
    """Give the planner the statistics of new tables on PostgreSQL (statistics follow a rename).
    On SQLite they stay under a table's old name: :func:`swap` analyses the live tables."""
    if conn.dialect.name == "postgresql":
        analyze(conn, [table.name for table in tables])


def put_rows(conn: Connection, table: Table, rows: Iterable[Sequence[Any]]) -> None:
    """Insert rows of all of ``table``'s columns, each column's own conversions applied here
    (times, on SQLite): driver-level rows."""
    columns = [column.name for column in table.columns]
    processors = [(i, p) for i, c in enumerate(table.columns) if (p := c.type.bind_processor(conn.dialect))]
    batch = [list(row) for row in rows]
    for row in batch if processors else ():
        for i, process in processors:
            row[i] = process(row[i])
    insert_rows(conn, table, columns, batch)


def memory_rows(
    tables: ProjectionTables, state: MemoryState, chunk: int = 100_000
) -> Iterator[tuple[Table, list[tuple[Any, ...]]]]:
    """The rows of every table but the cube of a whole in-memory projection, ``chunk`` at a time:
    facts with their previous days (:func:`fact_rows`) and her case's categories, cases, referrals
    and what is pending."""
    for facts in fact_rows(state.facts, previous_days(state.facts.items()), state.case, chunk):
        yield tables.facts, facts
    others: list[tuple[Table, Iterable[tuple[Any, ...]]]] = [
        (tables.cases, ((h, *dims) for h, dims in state.cases.items())),
        (
            tables.referrals,
            (
                (h, r.province, r.category, r.case_hash, r.requested_at, r.accepted_at, r.completed_at)
                for h, r in state.referrals.items()
            ),
        ),
        (tables.pending, ((h, *cell, d) for h, cell, d in state.pending_cells() if d)),
    ]
    for table, rows in others:
        it = iter(rows)
        while batch := list(islice(it, chunk)):
            yield table, batch


def write_memory_rows(
    conn: Connection, tables: ProjectionTables, table: Table, rows: list[tuple[Any, ...]]
) -> None:
    """Insert a chunk of :func:`memory_rows` (facts as they are: their dates need no conversion)."""
    if table is tables.facts:
        insert_rows(conn, table, FACT_COLUMNS, rows)
    else:
        put_rows(conn, table, rows)


def write_memory_state(conn: Connection, tables: ProjectionTables, state: MemoryState) -> None:
    """Bulk-write a whole in-memory projection into empty tables (created with their indexes), in
    the caller's transaction. (A rebuild writes its cube in a process of its own: ``spreader``.)"""
    dropped = unkey(conn, tables.all())
    for rows in state.rows() if isinstance(state, DeferredState) else [cell_rows(state.cube.items())]:
        write_rows(conn, tables.cube, rows, add=False)
    for table, batch in memory_rows(tables, state):
        write_memory_rows(conn, tables, table, batch)
    rekey(conn, dropped)
    analyze_tables(conn, tables.all())


#: What a swap appends to the names of the tables it retires (:func:`retired_tables`).
RETIRED = "__retired"


def swap(conn: Connection, fresh: ProjectionTables, live: ProjectionTables = LIVE) -> None:
    """Give the fresh tables the live names, in the caller's transaction; the old ones get
    ``__retired`` names, dropped afterwards (``rebuild.retire``). They have the current layout,
    so it is stamped."""
    for new, old in zip(fresh.all(), live.all(), strict=True):
        retired = f"{old.name}{RETIRED}"
        conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{retired}"')  # one a stopped rebuild left
        conn.exec_driver_sql(f'ALTER TABLE "{old.name}" RENAME TO "{retired}"')
        conn.exec_driver_sql(f'ALTER TABLE "{new.name}" RENAME TO "{old.name}"')
    if conn.dialect.name == "sqlite":  # its statistics stay under a table's old name
        analyze(conn, [table.name for table in live.all()])
    stamp_layout(conn)


def retired_tables(conn: Connection) -> list[tuple[str, list[str]]]:
    """The tables a swap retired that are still there: their names and primary key columns."""
    names = set(sa_inspect(conn).get_table_names())
    return [
        (f"{table.name}{RETIRED}", [column.name for column in table.primary_key])
        for table in LIVE.all()
        if f"{table.name}{RETIRED}" in names
    ]


def delete_some(conn: Connection, name: str, key: Sequence[str], rows: int) -> int:
    """Delete the first ``rows`` rows of table ``name`` in the order of its primary key ``key`` (a
    range of the key: no scan); returns how many (none when fewer are left)."""
    columns = ", ".join(f'"{column}"' for column in key)
    bound = f'SELECT {columns} FROM "{name}" ORDER BY {columns} LIMIT 1 OFFSET {int(rows) - 1}'
    result = conn.exec_driver_sql(f'DELETE FROM "{name}" WHERE ({columns}) <= ({bound})')
    return int(result.rowcount)


def cube_contents(conn: Connection, tables: ProjectionTables = LIVE) -> dict[Cell, int]:
    """Every non-zero cell (to compare a rebuild with the live projection), a histogram's as the
    cells of its days (``d2a:12``), whatever the writes that appended them."""
    t = tables.cube
    found = select(*(t.c[n] for n in CELL_COLUMNS), t.c.value, t.c.pairs)
    rows = conn.execute(found.where(or_(t.c.value != 0, t.c.pairs.is_not(None))))
    out: dict[Cell, int] = {}
    for row in rows:
        if row[9] is None:
            out[tuple(row[:8])] = int(row[8])  # type: ignore[index]
            continue
        for days, count in parse_pairs(row[9]).items():
            out[(*row[:7], f"{row[7]}{days}")] = count  # type: ignore[index]
    return out


def record_audit(
    session: Session, *, actor: str, role: str, action: str, query: str, exact: bool, at: datetime
) -> None:
    session.execute(
        insert(audit).values(actor=actor, role=role, action=action, query=query, exact=exact, at=at)
    )
