"""Reads of the projection a report is made of: which cube cells it sums (``cube_rows``) and, over
a range of days that is no kept period, the repeats to take away from her facts to count distinct
women (``distinct_rows``). ``queries.py`` makes the report from these rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from itertools import product
from typing import Any

from sqlalchemy import and_, func, literal_column, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from services.reporting.domain import DISTINCT_METRICS, FACT_COUNT, FACT_COUNTS
from services.reporting.periods import (
    ALL_MONTHS,
    Block,
    Phases,
    each_day,
    kept_with_all_four,
    plan,
    whole_years,
)
from services.reporting.projections import DIMENSIONS
from services.reporting.store import LIVE, ProjectionTables


@dataclass(frozen=True)
class CubeQuery:
    """Which cells a report sums: additive figures from the ``additive`` period keys (``M*`` = every
    month; None = the days ``start``..``end``), distinct ones from the ``distinct`` key (None = from
    the facts, see :func:`distinct_rows`)."""

    additive: tuple[str, ...] | None
    distinct: str | None
    start: date | None = None
    end: date | None = None
    provinces: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()  # province and/or case dimensions
    filters: tuple[tuple[str, str], ...] = ()  # (dimension, value)
    #: The kept periods and days a range is read in, when it holds whole months (``periods.plan``).
    blocks: tuple[Block, ...] = ()

    @classmethod
    def over(
        cls,
        start: date | None,
        end: date | None,
        phases: Phases,
        provinces: tuple[str, ...] = (),
        group_by: tuple[str, ...] = (),
        filters: tuple[tuple[str, str], ...] = (),
    ) -> CubeQuery:
        """The query of a report over ``start``..``end`` (None: open), as ``periods.plan`` reads it."""
        where = plan(start, end, phases)
        return cls(where.additive, where.distinct, start, end, provinces, group_by, filters, where.blocks)


def _level(q: CubeQuery) -> str:
    """The roll-up a query reads: ``all``, one case category (grouped or filtered by it alone), or
    ``full``."""
    used = {g for g in q.group_by if g != "province"} | {d for d, _ in q.filters}
    if not used:
        return "all"
    return used.pop() if len(used) == 1 else "full"


def _cell_per_row(q: CubeQuery, level: str) -> bool:
    """Whether, within one period, each cell of ``level`` the query reads is a row of the report of
    its own: every column that varies among them (province, the level's case categories) grouped by
    or fixed by a filter. Then the rows need no GROUP BY: they stream in key order, no sort."""
    fixed = set(q.group_by) | {d for d, _ in q.filters} | ({"province"} if len(q.provinces) == 1 else set())
    named = set(DIMENSIONS) if level == "full" else set() if level == "all" else {level}
    return "province" in fixed and named <= fixed


def cube_rows(
    session: Session, q: CubeQuery, metrics: Sequence[str] | None = None, tables: ProjectionTables = LIVE
) -> list[tuple[Any, ...]]:
    """``(group values..., category, metric, sum, pairs)`` rows from the cube, what
    ``queries.blocks`` reads: ``pairs`` is None but for a histogram (metric ``d2a:``), where it
    holds the ``days count`` pairs of the rows summed, joined by commas."""
    t = tables.cube
    level = _level(q)
    groups = [t.c[g] for g in q.group_by]
    keys = q.additive
    if keys is not None and keys != (ALL_MONTHS,):
        # Years and weeks are not kept with all four categories (their months and days are read);
        # elsewhere a whole year's row is read, not its twelve months'.
        keys = kept_with_all_four(keys) if level == "full" else whole_years(keys)

    def scoped(stmt: Select[Any]) -> Select[Any]:
        stmt = stmt.where(t.c.level == level)
        for dim, value in q.filters:
            stmt = stmt.where(t.c[dim] == value)
        if q.provinces:
            stmt = stmt.where(t.c.province.in_(q.provinces))
        return stmt

    def select_from(one_period: bool) -> Select[Any]:
        if one_period and _cell_per_row(q, level):
            return scoped(select(*groups, t.c.category, t.c.metric, t.c.value, t.c.pairs))
        stmt = select(
            *groups, t.c.category, t.c.metric, func.sum(t.c.value), func.aggregate_strings(t.c.pairs, ",")
        )
        return scoped(stmt.group_by(*groups, t.c.category, t.c.metric))

    def period_in(keys: Sequence[str]) -> ColumnElement[bool]:
        return t.c.period == keys[0] if len(keys) == 1 else t.c.period.in_(keys)

    if keys is None:
        lo = f"D{(q.start or date(1900, 1, 1)).isoformat()}"
        hi = f"D{(q.end or date(9999, 12, 31)).isoformat()}"
        periods = and_(t.c.period >= lo, t.c.period <= hi)
    elif keys == (ALL_MONTHS,) and level == "full":
        periods = and_(t.c.period > "M", t.c.period < "N")  # every month key, by the index
    elif keys == (ALL_MONTHS,):
        # Every year key: all time is the sum of its years (a year's row sums its months, and
        # reads a twelfth as many rows: over a million cases, all time was most of its time here).
        periods = and_(t.c.period > "Y", t.c.period < "Z")
    else:
        periods = period_in(keys)
    one_period = keys is not None and len(keys) == 1 and keys != (ALL_MONTHS,)
    rows: list[tuple[Any, ...]] = []
    # Over days, distinct women start as the count of her facts in them (``domain.FACT_COUNT``):
    # read with the additive figures, under the distinct figure's name; distinct_rows subtracts.
    wanted = None if metrics is None else set(metrics)
    if wanted is not None and q.distinct is None:
        wanted |= {FACT_COUNT + m for m in DISTINCT_METRICS if m in wanted}
    if wanted is None or wanted - set(DISTINCT_METRICS):
        cells = select_from(one_period).where(periods, t.c.metric.not_in(DISTINCT_METRICS))
        if wanted is not None:
            cells = cells.where(t.c.metric.in_(sorted(wanted)))
        found = session.execute(cells).all()
        at = len(groups) + 1  # the metric's column
        rows += [
            (*row[:at], row[at][len(FACT_COUNT) :], *row[at + 1 :]) if row[at] in FACT_COUNTS else tuple(row)
            for row in found
        ]
    # Women from the kept period's cells; in blocks, those of each kept period added up
    # (distinct_rows takes away the repeats across blocks).
    kept = [q.distinct] if q.distinct is not None else [b.key for b in q.blocks if b.key]
    if kept and (metrics is None or set(metrics) & set(DISTINCT_METRICS)):
        distinct = select_from(len(kept) == 1).where(period_in(kept), t.c.metric.in_(DISTINCT_METRICS))
        rows += [tuple(row) for row in session.execute(distinct).all()]
    return rows


#: Longest range of days whose previous days distinct_rows names one by one (a few years).
MAX_DAYS_NAMED = 1200


def _repeat_parts(
    q: CubeQuery, lo: date, hi: date
) -> list[tuple[list[date] | tuple[date, date], date | None]]:
    """Which facts distinct_rows takes away, as (their previous days, and the day they must come
    after or None): a previous day in the range's days (all of them, or its blocks of days), up to
    ``hi``; one in a kept period of the range, after that period (a repeat within it is counted
    once in its women already). A kept period that ends the range has none."""
    if not q.blocks:
        long = (hi - lo).days + 1 > MAX_DAYS_NAMED
        return [((lo, hi) if long else each_day(lo, hi), None)]
    out: list[tuple[list[date] | tuple[date, date], date | None]] = []
    days = [d for b in q.blocks if b.key is None for d in each_day(b.start, b.end)]
    if days:
        out.append((days, None))
    out += [(each_day(b.start, b.end), b.end) for b in q.blocks[:-1] if b.key is not None]
    return out


def distinct_rows(session: Session, q: CubeQuery, tables: ProjectionTables = LIVE) -> list[tuple[Any, ...]]:
    """What to take away from her facts in a range of days (which :func:`cube_rows` reads, summed
    from the days) to count distinct women: ``(group values..., category, metric, -n)``.

    A woman is counted by her first fact in the range: of her facts in it, the others are those
    whose previous one (of her facts of that kind in that province, and of that category) is in the
    range too. They are few beside her facts (a range of days holds most women once or twice), and
    an index by previous day reads just them: ``previous day in lo..hi and day <= hi``.

    A range read in blocks (``CubeQuery.blocks``) starts from the women of each kept period in it
    (her first fact in each) and her facts on its other days: what to take away is then her
    repeats but those within one kept period (see :func:`_repeat_parts`), a third of them or less
    over most of a year."""
    f = tables.facts
    lo, hi = q.start or date(1900, 1, 1), q.end or date(9999, 12, 31)
    out: list[tuple[Any, ...]] = []
    # Her case's categories are on each range fact (and in the indexes): no join.
    groups = [f.c[g] for g in q.group_by]
    reads = (
        ("session", "women_reached", f.c.previous_day, False),
        ("completed", "women_supported", f.c.previous_day, False),
        ("completed", "women_supported", f.c.previous_category_day, True),
    )
    for (kind, metric, previous, per_category), (starts, after) in product(reads, _repeat_parts(q, lo, hi)):
        named = f.c.kind == literal_column(f"'{kind}'")  # a literal: see range_facts
        again = select(*groups).select_from(f).where(named)
        if q.provinces:
            again = again.where(f.c.province.in_(q.provinces))
        # previous <= day. Each previous day by name: a seek for (previous day, kind), then its
        # days up to hi, the repeats and nothing else; a range of previous days would also read
        # every fact after hi whose previous one is in the range (three times as many).
        within = previous.in_(starts) if isinstance(starts, list) else previous.between(*starts)
        again = again.where(previous.is_not(None), within, f.c.day <= hi)  # as the indexes say
        if after is not None:
            again = again.where(f.c.day > after)
        for name, value in q.filters:
            again = again.where(f.c[name] == value)
        if per_category:
            again = again.add_columns(f.c.category).group_by(*groups, f.c.category)
        else:
            again = again.add_columns(literal_column("''")).group_by(*groups)
        for row in session.execute(again.add_columns(func.count())):
            out.append((*row[:-2], row[-2], metric, -row[-1]))
    return out
