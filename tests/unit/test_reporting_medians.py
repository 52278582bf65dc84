"""Median days from the histograms a report reads: cells joined in text by the database, parsed and
merged (a day may come in several cells: several months, several groups), then the median."""

from __future__ import annotations

import random
import statistics
from collections import Counter

from sqlalchemy import create_engine, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.reporting.domain import DAYS_TO_COMPLETION, join_pairs, parse_pairs
from services.reporting.queries import Block, blocks, median_days
from services.reporting.reads import CubeQuery, cube_rows
from services.reporting.store import (
    COMPACT_AFTER,
    LIVE,
    compact_histograms,
    cube_contents,
    increment_cells,
    metadata,
)


def test_median_of_histograms_joined_in_text_is_the_median_of_the_referrals() -> None:
    rng = random.Random(7)
    for _ in range(300):
        cells = [(rng.randint(0, 400), rng.randint(1, 5)) for _ in range(rng.randint(1, 40))]
        # Split over a few rows, as months or groups come (days repeat across rows).
        rows, step = [], rng.randint(1, 10)
        for start in range(0, len(cells), step):
            part = cells[start : start + step]
            rows.append(("health", DAYS_TO_COMPLETION, None, ",".join(f"{d} {n}" for d, n in part)))
        block = blocks(rows, 0)[()]
        referrals = [d for d, n in cells for _ in range(n)]
        for category in ("health", ""):
            assert median_days(block.days[(DAYS_TO_COMPLETION, category)]) == (
                len(referrals),
                statistics.median(referrals),
            )


def test_a_total_merges_its_groups_histograms() -> None:
    one, two, total = Block(), Block(), Block()
    one.add_histogram("legal", DAYS_TO_COMPLETION, "3 1,10 2")
    two.add_histogram("legal", DAYS_TO_COMPLETION, "3 2,40 1")
    total.merge(one)
    total.merge(two)
    assert median_days(total.days[(DAYS_TO_COMPLETION, "legal")]) == (6, 6.5)  # 3 3 3 10 10 40
    assert median_days(None) == (0, None)
    assert median_days(total.days.get((DAYS_TO_COMPLETION, "health"))) == (0, None)


def test_pairs_merged_in_c_as_in_python() -> None:
    rng = random.Random(11)
    for _ in range(300):
        items = [
            f"{rng.randint(0, 500)} {rng.choice((-2, -1, 1, 1, 2, 3, 7))}" for _ in range(rng.randint(0, 60))
        ]
        text = ",".join(items + [""] * rng.randint(0, 2) if rng.random() < 0.2 else items)
        by_day: Counter[int] = Counter()  # the pairs merged by a plain loop
        for item in filter(None, text.split(",")):
            days, count = map(int, item.split())
            by_day[days] += count
        assert parse_pairs(text) == {days: count for days, count in by_day.items() if count}
    assert parse_pairs(None) == {}


def test_pairs_with_counts_taken_away_merge_by_day() -> None:
    # Figures counted before her case was known move to her categories: -1 on the pending row.
    assert parse_pairs("3 1,12 2,3 -1,40 1,12 1") == {12: 3, 40: 1}
    assert parse_pairs("") == {} and parse_pairs("5 1,5 -1") == {}
    assert parse_pairs(",4 1,,5 2") == {4: 1, 5: 2}  # rows an older compaction left as ""
    assert join_pairs({40: 1, 3: 2, 7: 0}) == "3 2,40 1"
    block = Block()
    block.add_histogram("legal", DAYS_TO_COMPLETION, "3 1,12 2,3 -1,40 1")
    assert median_days(block.days[(DAYS_TO_COMPLETION, "legal")]) == (3, 12.0)


def _histogram_rows(conn: Connection) -> list[tuple[str, int, int]]:
    c = LIVE.cube.c
    return [tuple(r) for r in conn.execute(select(c.pairs, c.appends, c.value).where(c.pairs.is_not(None)))]


def test_a_histogram_is_one_row_that_writes_append_to_and_that_is_compacted() -> None:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    rng = random.Random(3)
    key = ("M2025-07", "31", "legal", "*", "*", "*", "*")
    added: Counter[int] = Counter()
    with engine.begin() as conn:
        for write in range(1, 60):
            days = [rng.randint(0, 90) for _ in range(rng.randint(1, 4))]
            cells = Counter((*key, f"{DAYS_TO_COMPLETION}{d}") for d in days)
            increment_cells(conn, LIVE.cube, cells.items())
            added.update(days)
            [(pairs, appends, value)] = _histogram_rows(conn)
            # Never more than COMPACT_AFTER writes' pairs in the row: the write that reaches it merges.
            assert appends < COMPACT_AFTER
            assert appends == (write - 1) % COMPACT_AFTER  # the first write inserts it
            assert value == sum(added.values())
            if appends == 0:
                assert pairs == join_pairs(added)
            expected = {(*key, f"{DAYS_TO_COMPLETION}{d}"): n for d, n in added.items()}
            assert cube_contents(conn) == expected
        # A figure moved away (her case opened): the row keeps counts that add up to what is left.
        moved = Counter({(*key, f"{DAYS_TO_COMPLETION}{d}"): -n for d, n in added.items()})
        increment_cells(conn, LIVE.cube, moved.items())
        assert cube_contents(conn) == {}
        with Session(bind=conn) as session:
            q = CubeQuery(additive=("M2025-07",), distinct=None, provinces=("31",))
            rows = cube_rows(session, q)
        block = blocks(rows, 0)[()]
        assert median_days(block.days.get((DAYS_TO_COMPLETION, "legal"))) == (0, None)


def test_a_histogram_compacted_to_no_day_takes_new_days() -> None:
    """Days that net to nothing (a figure moved away) compact to no pair; the next write's pairs
    are the row's, not appended to an empty string (",4 1" broke every read of the row)."""
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    key = ("D2025-07-14", "31", "legal", "*", "*", "*", "25_34")
    c = LIVE.cube.c
    with engine.begin() as conn:
        for delta in (1, -1):
            increment_cells(conn, LIVE.cube, [((*key, f"{DAYS_TO_COMPLETION}3"), delta)])
        conn.execute(update(LIVE.cube).where(c.pairs.is_not(None)).values(appends=COMPACT_AFTER))
        assert compact_histograms(conn, LIVE.cube) == 1
        increment_cells(conn, LIVE.cube, [((*key, f"{DAYS_TO_COMPLETION}4"), 1)])
        assert conn.execute(select(c.pairs).where(c.pairs.is_not(None))).scalars().all() == ["4 1"]
        assert cube_contents(conn) == {(*key, f"{DAYS_TO_COMPLETION}4"): 1}
        with Session(bind=conn) as session:
            q = CubeQuery(additive=("D2025-07-14",), distinct=None, provinces=("31",), group_by=("age_band",))
            block = blocks(cube_rows(session, q), 1)[("25_34",)]
    assert median_days(block.days.get((DAYS_TO_COMPLETION, "legal"))) == (1, 4.0)


def test_reports_read_histogram_rows_of_several_periods_and_groups() -> None:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    rng = random.Random(11)
    every: dict[str, list[int]] = {"31": [], "01": []}
    with engine.begin() as conn:
        for month in ("M2025-01", "M2025-02", "M2025-03"):
            for province in every:
                for _ in range(3):  # three writes: the row holds days more than once
                    days = [rng.randint(0, 60) for _ in range(5)]
                    cells = Counter(
                        (month, province, "legal", "*", "*", "*", "*", f"{DAYS_TO_COMPLETION}{d}")
                        for d in days
                    )
                    increment_cells(conn, LIVE.cube, cells.items())
                    every[province] += days
    with Session(engine) as session:
        q = CubeQuery(additive=("M2025-01", "M2025-02", "M2025-03"), distinct=None, group_by=("province",))
        grouped = blocks(cube_rows(session, q), 1)
    for province, days in every.items():
        for category in ("legal", ""):  # a referral's category, and all categories
            found = median_days(grouped[(province,)].days[(DAYS_TO_COMPLETION, category)])
            assert found == (len(days), float(statistics.median(days)))
