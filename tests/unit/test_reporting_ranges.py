"""Distinct women over any range of days as a plain count (each range fact knows the day of her
previous one), kept right whatever the order facts arrive in; a year read whole."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, delete, event, select
from sqlalchemy.orm import Session

from services.reporting.api import run_report
from services.reporting.batch import apply_batch
from services.reporting.handlers import apply_to
from services.reporting.periods import Phases
from services.reporting.projections import DIMENSIONS, RANGE_KINDS, Fact, previous_days
from services.reporting.reads import CubeQuery
from services.reporting.store import LIVE, insert_facts, link_facts, metadata
from shared.events import CaseOpened, Event, ReferralCompleted, SessionRecorded
from shared.vocab import Channel, ServiceCategory
from tests.unit.test_reporting_history import (
    HASHER,
    HISTORY,
    PHASES,
    CaseRecord,
    assert_matches,
    expected,
    figures_from,
    grouped_from,
    project,
    tables_of,
    vn_day,
)

DAY0 = date(2025, 1, 1)


def random_facts(rng: random.Random, n: int) -> list[tuple[str, Fact]]:
    """Facts of a few women (several on one day too), of both range kinds and another kind."""
    facts = []
    for i in range(n):
        kind = rng.choice([*RANGE_KINDS, "distinct"])
        day = DAY0 + timedelta(days=rng.randint(0, 40))
        fact = Fact(
            kind, f"w{rng.randint(1, 12)}", rng.choice("12"), day, rng.choice(["", "legal", "health"])
        )
        facts.append((f"k{i:04d}", fact))
    return facts


def test_a_count_of_first_facts_in_a_range_is_the_distinct_count() -> None:
    rng = random.Random(1)
    facts = random_facts(rng, 400)
    before = previous_days(facts)
    assert set(before) == {key for key, f in facts if f.kind in RANGE_KINDS}
    for _ in range(200):
        lo = DAY0 + timedelta(days=rng.randint(0, 40))
        hi = lo + timedelta(days=rng.randint(0, 15))
        inside = [(key, f) for key, f in facts if f.kind in RANGE_KINDS and lo <= f.day <= hi]
        women = {(f.kind, f.province, f.case_hash) for _, f in inside}
        per_category = {(f.kind, f.province, f.case_hash, f.category) for _, f in inside}
        for n, distinct in ((0, women), (1, per_category)):
            firsts = [key for key, _ in inside if (day := before[key][n]) is None or day < lo]
            assert len(firsts) == len(distinct)


def test_facts_linked_as_they_come_get_the_previous_days_of_all_at_once() -> None:
    rng = random.Random(2)
    facts = random_facts(rng, 300)
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    order = list(facts)
    rng.shuffle(order)
    with engine.begin() as conn:
        while order:
            batch = order[: rng.randint(1, 30)]
            order = order[len(batch) :]
            insert_facts(conn, LIVE.facts, dict(batch))
            link_facts(conn, LIVE.facts, {f.case_hash for _, f in batch if f.kind in RANGE_KINDS})
        f = LIVE.facts.c
        stored = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                select(f.key, f.previous_day, f.previous_category_day).where(f.kind.in_(RANGE_KINDS))
            )
        }
    assert stored == previous_days(facts)


def range_fact_rows(engine: Engine) -> dict[str, tuple[Any, ...]]:
    """Each range fact's previous days and case categories, as stored."""
    f = LIVE.facts.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(f.key, f.previous_day, f.previous_category_day, *(f[n] for n in DIMENSIONS)).where(
                f.kind.in_(RANGE_KINDS)
            )
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


@pytest.mark.parametrize("batch", [300, 1])
def test_live_batches_in_any_order_keep_facts_as_the_rebuild_does(batch: int) -> None:
    """Previous days linked, and her case's categories on each range fact, even when the fact was
    counted before her case.opened (then ``?`` until it comes): batches of 300 (``batch.py``) and
    one event at a time (``SqlState``, which a rebuild uses for the events published meanwhile)."""
    events = list(HISTORY.events if batch > 1 else HISTORY.events[:1500])
    random.Random(3).shuffle(events)
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    phases = Phases.of(PHASES)
    with Session(engine) as session, session.begin():
        for start in range(0, len(events), batch):
            if batch > 1:
                assert not apply_batch(session, events[start : start + batch], HASHER, phases)
            else:
                apply_to(session, events[start], HASHER, phases)
    stored = range_fact_rows(engine)
    state = project(events)
    before = previous_days(state.facts.items())
    # Independently of the code under test: her categories from her case.opened, if it was seen.
    opened = {
        HASHER("case", e.case_id): (
            e.channel.value,
            e.profile.migration_kind.value if e.profile and e.profile.migration_kind else "unknown",
            e.profile.return_kind.value if e.profile and e.profile.return_kind else "unknown",
            e.profile.age_band.value if e.profile else "unknown",
        )
        for e in events
        if isinstance(e, CaseOpened)
    }
    assert any(dims[3] != "unknown" for dims in opened.values())
    wanted = {
        key: (*before[key], *opened.get(f.case_hash, ("?",) * 4))
        for key, f in state.facts.items()
        if f.kind in RANGE_KINDS
    }
    assert stored == wanted
    assert stored == range_fact_rows(tables_of(state))  # what the rebuild writes


def repeat_history(
    rng: random.Random, first: datetime = datetime(2025, 6, 1, 9, tzinfo=UTC), days: int = 45
) -> tuple[list[Event], list[tuple[str, str, str, str, date]]]:
    """Cases of the history given several sessions and completed referrals of one category within
    ``days`` from ``first`` (the history has one referral per category and case): ``(events,
    [(kind, province, case id, category, day)])``."""
    opened = [e for e in HISTORY.events if isinstance(e, CaseOpened) and e.province_scheme == "vn-2025"][:30]
    events: list[Event] = list(opened)
    seen = []
    for n in range(400):
        case = rng.choice(opened)
        at = first + timedelta(days=rng.randint(0, days), hours=rng.randint(0, 20))
        if rng.random() < 0.5:
            event: Event = SessionRecorded(
                case_id=case.case_id, province=case.province, session_id=f"s{n}", channel=Channel.HOTLINE,
                topics=[ServiceCategory.LEGAL], duration_minutes=30, held_on=vn_day(at), at=at,
            )  # fmt: skip
            seen.append(("session", case.province, case.case_id, "", vn_day(at)))
        else:
            category = rng.choice([ServiceCategory.LEGAL, ServiceCategory.HEALTH_EDUCATION])
            event = ReferralCompleted(
                referral_id=f"r{n}", case_id=case.case_id, partner_id="p1", province=case.province,
                category=category, at=at, outcome="service_provided",
            )  # fmt: skip
            seen.append(("completed", case.province, case.case_id, category.value, vn_day(at)))
        events.append(event)
    return events, seen


@pytest.mark.parametrize(
    ("first", "days", "longest"),
    [
        (datetime(2025, 6, 1, 9, tzinfo=UTC), 45, 20),  # ranges of days only
        # Ranges holding whole months and quarters, read in blocks (periods.split).
        (datetime(2025, 3, 20, 9, tzinfo=UTC), 150, 130),
    ],
    ids=["days", "blocks"],
)
def test_women_over_days_with_repeated_facts_of_one_category(
    first: datetime, days: int, longest: int
) -> None:
    """Women reached and supported (in all and per category) over ranges of days where many of
    them have several facts, of one category too, against a count of the women themselves; the
    facts applied in live batches, shuffled (previous days linked as they come)."""
    rng = random.Random(5)
    events, seen = repeat_history(rng, first, days)
    rng.shuffle(events)
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        for start in range(0, len(events), 37):
            assert not apply_batch(session, events[start : start + 37], HASHER, Phases.of(PHASES))
    age = {
        e.case_id: e.profile.age_band.value if e.profile else "unknown"
        for e in events
        if isinstance(e, CaseOpened)
    }
    repeated = blocked = 0
    for _ in range(25):
        lo = first.date() + timedelta(days=rng.randint(0, 40))
        hi = lo + timedelta(days=rng.randint(0, longest))
        blocked += bool(CubeQuery.over(lo, hi, Phases.of(PHASES)).blocks)
        inside = [(k, p, c, cat) for k, p, c, cat, day in seen if lo <= day <= hi]
        repeated += len(inside) - len({(k, p, c, cat) for k, p, c, cat in inside})
        wanted: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
        for group in ((), (1,)):  # ungrouped; by age band
            for name, women in (
                ("women_reached", {(p, c) for k, p, c, _ in inside if k == "session"}),
                ("women_supported", {(p, c) for k, p, c, _ in inside if k == "completed"}),
                *(
                    (
                        f"women_supported/{cat}",
                        {(p, c) for k, p, c, x in inside if k == "completed" and x == cat},
                    )
                    for cat in ("legal", "health_education")
                ),
            ):
                for _, c in women:
                    wanted[(age[c],) if group else ()][name] += 1
        assert_matches(figures_from(engine, lo, hi), wanted[()])
        grouped = grouped_from(engine, lo, hi, ("age_band",))
        for key, figures in wanted.items():
            if key:
                assert_matches(grouped[key], figures)
    assert repeated > 100  # most ranges hold women with several facts of one kind and category
    assert blocked > 10 if longest > 100 else blocked == 0


@pytest.mark.parametrize(
    ("start", "end", "dimension", "removed_level", "removed_periods"),
    [
        # A year is read whole, not summed from its months: without the months of that roll-up,
        # only the year's cells can answer.
        (date(2025, 1, 1), date(2025, 12, 31), "return_kind", "return_kind", "M%"),
        # Days are read from their cells of that category alone: without the days' cells with all
        # four, only those can answer.
        (date(2025, 6, 15), date(2025, 7, 14), "age_band", "full", "D%"),
    ],
    ids=["year-not-months", "days-not-all-four"],
)
def test_a_range_grouped_by_one_category_reads_the_cells_of_that_category(
    start: date, end: date, dimension: str, removed_level: str, removed_periods: str
) -> None:
    engine = tables_of(project(HISTORY.events))
    with engine.begin() as conn:
        cube = LIVE.cube.c
        conn.execute(delete(LIVE.cube).where(cube.level == removed_level, cube.period.like(removed_periods)))
    groups = grouped_from(engine, start, end, ("province", dimension))
    assert len(groups) > 5
    for (province, value), actual in groups.items():
        if value == "none":  # community activities, not a case
            continue

        def of_value(c: CaseRecord, wanted: str = value) -> bool:
            return bool(getattr(c, dimension) == wanted)

        assert_matches(actual, expected(HISTORY, start, end, {province}, of_value))


def fact_plans(engine: Engine) -> list[str]:
    """How SQLite reads the facts for a day-range report (several groupings) and for linking."""
    statements: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "rpt_fact" in statement and not statement.startswith("EXPLAIN"):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    start, end = date(2025, 6, 15), date(2025, 7, 14)
    with Session(engine) as session:
        for provinces, group_by in ((("31",), ()), ((), ("province",)), ((), ("age_band",))):
            run_report(session, CubeQuery(None, None, start, end, provinces, group_by))
        link_facts(session, LIVE.facts, [HASHER("case", HISTORY.cases[0].case_id)])
        event.remove(engine, "before_cursor_execute", grab)
        return [
            row[3]
            for statement, parameters in statements
            for row in session.connection().exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, tuple(parameters)
            )
            if "rpt_fact" in row[3]
        ]


@pytest.mark.parametrize("analyzed", [False, True])
def test_range_facts_are_read_through_their_partial_indexes(analyzed: bool) -> None:
    engine = tables_of(project(HISTORY.events))
    if analyzed:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    plans = fact_plans(engine)
    # Each report reads the facts whose previous one is in the range three times (sessions;
    # completed referrals in all and per category), a grouped one no more for its totals; each by
    # its own index, a seek per previous day in the range and then its days up to the range's end:
    # no fact after the range read. Then linking reads a woman's facts once.
    assert len(plans) == 3 * 3 + 1
    for n, p in enumerate(plans[:-1]):
        column = "previous_category_day" if n % 3 == 2 else "previous_day"
        index = "ix_rpt_fact_previous_category" if n % 3 == 2 else "ix_rpt_fact_previous"

        assert p.startswith(
            f"SEARCH rpt_fact USING COVERING INDEX {index} ({column}=? AND kind=? AND day<?)"
        ), p
    assert plans[-1].startswith("SEARCH rpt_fact USING COVERING INDEX ix_rpt_fact_case (case_hash=?")
