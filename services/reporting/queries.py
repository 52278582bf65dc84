"""Report tables from cube rows: totals, per category, per group, derived figures (completion
rate, median days), and the donor view with small cells suppressed. Pure, no I/O."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from services.reporting.domain import (
    ADDITIVE_METRICS,
    DAYS_TO_ACCEPTANCE,
    DAYS_TO_COMPLETION,
    DISTINCT_METRICS,
    HISTOGRAMS,
    NO_CATEGORY,
    parse_pairs,
)
from services.reporting.suppression import grid_lines, label, suppress
from shared.vocab import ServiceCategory

CATEGORIES = tuple(c.value for c in ServiceCategory)
#: Figures broken down by service category (the others are per case, message or activity).
CATEGORY_METRICS = frozenset(
    {
        "needs_assessed",
        "session_topics",
        "referrals_requested",
        "referrals_accepted",
        "referrals_rejected",
        "referrals_completed",
        "referrals_failed",
        "referrals_cancelled",
        "referrals_overdue",
        "needs_unmatched",
        "women_supported",
    }
)
METRICS = ADDITIVE_METRICS + DISTINCT_METRICS
GROUPS = ("province", "channel", "migration_kind", "return_kind", "age_band")

Value = int | float | str | None

_NONE: Counter[str] = Counter()  # never changed


#: Whole days -> referrals. Merged by day as rows are read: over a million distinct cases a
#: report's histograms sum hundreds of thousands of pairs, and the median then sorts a few
#: hundred days, not every pair again for each total they are added to.
Histogram = dict[int, int]


@dataclass
class Block:
    """The figures of one row of a report (or of its totals)."""

    figures: Counter[str] = field(default_factory=Counter)
    by_category: dict[str, Counter[str]] = field(default_factory=dict)
    #: (histogram prefix, category or "") -> its histogram
    days: dict[tuple[str, str], Histogram] = field(default_factory=dict)

    def add(self, category: str, metric: str, value: int) -> None:
        # Called once per cube row (thousands per report): no throw-away Counter per call.
        if category == NO_CATEGORY:
            self.figures[metric] += value
            return
        figures = self.by_category.get(category)
        if figures is None:
            figures = self.by_category[category] = Counter()
        figures[metric] += value
        if metric not in DISTINCT_METRICS:  # distinct totals have their own "" row
            self.figures[metric] += value

    def add_histogram(self, category: str, prefix: str, pairs: str) -> None:
        """Add a histogram given as ``days count`` pairs joined by commas (``reads.cube_rows``), to
        its category and to all categories."""
        found = parse_pairs(pairs)
        for key in ((prefix, category), (prefix, NO_CATEGORY)):
            _merge_into(self.days.setdefault(key, {}), found)

    def merge(self, other: Block, distinct: bool = False) -> None:
        """Add the additive figures and histograms of ``other`` (a group's, to make the total),
        and with ``distinct`` its distinct women too (only where each woman is in one group)."""
        for metric, value in other.figures.items():
            if distinct or metric not in DISTINCT_METRICS:
                self.figures[metric] += value
        for category, figures in other.by_category.items():
            mine = self.by_category.setdefault(category, Counter())
            for metric, value in figures.items():
                if distinct or metric not in DISTINCT_METRICS:
                    mine[metric] += value
        for key, histogram in other.days.items():
            _merge_into(self.days.setdefault(key, {}), histogram)

    def value(self, metric: str, category: str | None = None) -> int:
        if category is None:
            return self.figures.get(metric, 0)
        return self.by_category.get(category, _NONE).get(metric, 0)


def _merge_into(histogram: Histogram, other: Histogram) -> None:
    get = histogram.get
    for days, count in other.items():
        histogram[days] = get(days, 0) + count


def median_days(histogram: Histogram | None) -> tuple[int, float | None]:
    """How many referrals a histogram of whole days holds, and their median (mean of the two
    middle values for an even count; None for none)."""
    ordered = sorted(item for item in (histogram or {}).items() if item[1] > 0)
    upto = list(accumulate(count for _, count in ordered))
    n = upto[-1] if upto else 0
    if n == 0:
        return 0, None

    def nth(i: int) -> int:  # the i-th referral's days, from 0
        return ordered[bisect_right(upto, i)][0]

    return n, float(nth(n // 2)) if n % 2 else (nth(n // 2 - 1) + nth(n // 2)) / 2


def completion_rate(completed: int, requested: int) -> float | None:
    """Referrals completed / referrals requested in the same period and cell (3 decimals)."""
    return round(completed / requested, 3) if requested else None


def blocks(rows: Iterable[Sequence[Any]], n_groups: int) -> dict[tuple[str, ...], Block]:
    """Rows ``(group values..., category, metric, value[, histogram])`` -> one block per group; a
    histogram's row is ``(group values..., category, prefix, _, "days count,...")``."""
    out: dict[tuple[str, ...], Block] = {}
    for row in rows:
        key = tuple(row[:n_groups])
        block = out.get(key)
        if block is None:
            block = out[key] = Block()
        category, metric = row[n_groups], row[n_groups + 1]
        if metric in HISTOGRAMS:
            block.add_histogram(category, metric, row[n_groups + 3] or "")
        else:
            block.add(category, metric, int(row[n_groups + 2] or 0))
    return out


@dataclass
class Report:
    """A summary table: the totals and, when grouped, one row per group."""

    group_by: tuple[str, ...]
    total: Block
    rows: dict[tuple[str, ...], Block]


def _derived(block: Block, category: str, shown: dict[str, Value], k: int | None) -> dict[str, Value]:
    cat = None if category == NO_CATEGORY else category
    out: dict[str, Value] = {}
    completed, requested = block.value("referrals_completed", cat), block.value("referrals_requested", cat)
    visible = k is None or (
        isinstance(shown.get("referrals_completed"), int)
        and isinstance(shown.get("referrals_requested"), int)
    )
    out["completion_rate"] = completion_rate(completed, requested) if visible else None
    for name, prefix in (
        ("median_days_to_acceptance", DAYS_TO_ACCEPTANCE),
        ("median_days_to_completion", DAYS_TO_COMPLETION),
    ):
        n, median = median_days(block.days.get((prefix, category)))
        out[name] = median if k is None or n >= k else None
    return out


def render(report: Report, k: int | None = None) -> dict[str, Any]:
    """The report as JSON-ready dicts; with ``k`` (the donor view) small cells show as ``"<k"``
    and enough others are hidden that no hidden cell can be worked out from the totals."""
    groups = sorted(report.rows) if report.group_by else []
    blocks_ = [report.rows[g] for g in groups]
    hidden: dict[tuple[str, int, str], bool] = {}  # (metric, row index or -1, category or "") -> hidden
    if k is not None:
        for metric in METRICS:
            cats = CATEGORIES if metric in CATEGORY_METRICS else ()
            size, lines = grid_lines(len(blocks_), len(cats))
            width = len(cats) + 1
            positions: list[tuple[int, str]] = []
            values: list[int] = []
            for i in range(size):
                r, c = divmod(i, width)
                block = report.total if r == len(blocks_) else blocks_[r]
                category = cats[c] if c < len(cats) else NO_CATEGORY
                values.append(block.value(metric, category or None))
                positions.append((-1 if r == len(blocks_) else r, category))
            for i in suppress(values, lines, k):
                hidden[(metric, *positions[i])] = True

    def show(block: Block, row: int, metric: str, category: str) -> Value:
        value = block.value(metric, category or None)
        return label(k) if k is not None and hidden.get((metric, row, category)) else value

    def one(block: Block, row: int) -> dict[str, Any]:
        totals: dict[str, Value] = {m: show(block, row, m, NO_CATEGORY) for m in METRICS}
        totals.update(_derived(block, NO_CATEGORY, totals, k))
        by_category: dict[str, dict[str, Value]] = {}
        for cat in CATEGORIES:
            figures: dict[str, Value] = {m: show(block, row, m, cat) for m in sorted(CATEGORY_METRICS)}
            figures.update(_derived(block, cat, figures, k))
            by_category[cat] = figures
        return {"totals": totals, "by_category": by_category}

    out = one(report.total, -1)
    out["rows"] = [
        {"group": dict(zip(report.group_by, g, strict=True)), **one(b, r)}
        for r, (g, b) in enumerate(zip(groups, blocks_, strict=True))
    ]
    return out


def flat_table(rendered: dict[str, Any], group_by: Sequence[str]) -> tuple[list[str], list[list[Value]]]:
    """One line per group (then the total) and category ("" = all): the table CSV and XLSX export."""
    metrics = [*METRICS, "completion_rate", "median_days_to_acceptance", "median_days_to_completion"]
    header = [*group_by, "category", *metrics]
    lines: list[list[Value]] = []
    entries = [(row["group"], row) for row in rendered["rows"]] + [
        (dict.fromkeys(group_by, "total"), rendered)
    ]
    for group, row in entries:
        lines.append([*(group[g] for g in group_by), "all", *(row["totals"].get(m) for m in metrics)])
        for cat, figures in row["by_category"].items():
            lines.append([*(group[g] for g in group_by), cat, *(figures.get(m, "") for m in metrics)])
    return header, lines
