"""How a range of days is read: a kept period, days, or blocks of kept periods and days."""

from __future__ import annotations

import random
from datetime import date, timedelta
from itertools import pairwise

from services.reporting.periods import (
    Block,
    Phases,
    day_run_keys,
    kept_with_all_four,
    months_between,
    plan,
    split,
    week_days,
    whole_years,
)


def test_a_range_holding_whole_months_is_read_in_its_longest_kept_periods() -> None:
    assert split(date(2024, 11, 3), date(2025, 8, 17)) == (
        Block(date(2024, 11, 3), date(2024, 11, 30)),
        Block(date(2024, 12, 1), date(2024, 12, 31), "M2024-12"),
        Block(date(2025, 1, 1), date(2025, 3, 31), "Q2025-1"),
        Block(date(2025, 4, 1), date(2025, 6, 30), "Q2025-2"),
        Block(date(2025, 7, 1), date(2025, 7, 31), "M2025-07"),
        Block(date(2025, 8, 1), date(2025, 8, 17)),
    )
    assert [b.key for b in split(date(2025, 1, 1), date(2026, 3, 31))] == ["Y2025", "Q2026-1"]
    where = plan(date(2025, 7, 1), date(2025, 8, 2), Phases())
    assert where.distinct is None  # no kept period: women from the blocks and the facts
    assert where.additive == ("M2025-07", "D2025-08-01", "D2025-08-02")


def test_a_whole_year_of_months_is_read_as_its_year() -> None:
    where = plan(date(2024, 12, 30), date(2026, 2, 1), Phases())
    assert where.additive is not None
    assert whole_years(where.additive) == (
        "D2024-12-30",
        "D2024-12-31",
        "Y2025",
        "M2026-01",
        "D2026-02-01",
    )
    eleven = months_between(date(2025, 1, 1), date(2025, 11, 30))
    assert whole_years(eleven) == tuple(eleven)  # not a whole year: its months
    # With all four case categories, years and weeks are not kept: their months and days are read.
    assert kept_with_all_four(("D2025-07-06", "W2025-28", "Y2025")) == (
        "D2025-07-06",
        *week_days("W2025-28"),
        *months_between(date(2025, 1, 1), date(2025, 12, 31)),
    )


def test_a_range_without_a_whole_month_is_read_from_its_days_by_whole_weeks() -> None:
    where = plan(date(2025, 6, 15), date(2025, 7, 14), Phases())  # a Sunday to a Monday
    assert (where.additive, where.distinct, where.blocks) == (
        ("D2025-06-15", "W2025-25", "W2025-26", "W2025-27", "W2025-28", "D2025-07-14"),
        None,
        (),
    )
    assert week_days("W2025-28") == tuple(f"D2025-07-{d:02d}" for d in range(7, 14))
    assert day_run_keys(date(2025, 7, 8), date(2025, 7, 13)) == tuple(  # no whole week
        f"D2025-07-{d:02d}" for d in range(8, 14)
    )
    # The ISO year of a week across 1 January: 29 Dec 2025 to 4 Jan 2026 is week 1 of 2026.
    assert day_run_keys(date(2025, 12, 29), date(2026, 1, 4)) == ("W2026-01",)
    assert week_days("W2026-01")[0] == "D2025-12-29"
    assert plan(date(2025, 7, 1), date(2025, 7, 31), Phases()).distinct == "M2025-07"  # kept whole


def test_blocks_cover_every_day_of_a_range_once_in_order() -> None:
    rng = random.Random(3)
    for _ in range(300):
        start = date(2024, 1, 1) + timedelta(days=rng.randint(0, 700))
        end = start + timedelta(days=rng.randint(0, 800))
        blocks = split(start, end)
        assert blocks[0].start == start and blocks[-1].end == end
        for before, after in pairwise(blocks):
            assert after.start == before.end + timedelta(days=1)
        for b in blocks:
            if b.key is not None:  # a kept period is whole
                assert plan(b.start, b.end, Phases()).distinct == b.key
