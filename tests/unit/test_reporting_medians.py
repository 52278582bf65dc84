"""Median days from the histograms a report reads: cells joined in text by the database, parsed and
merged (a day may come in several cells: several months, several groups), then the median."""

from __future__ import annotations

import random
import statistics

from services.reporting.domain import DAYS_TO_COMPLETION
from services.reporting.queries import Block, blocks, median_days


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
