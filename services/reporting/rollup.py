"""Cube rows, in the cube's primary key order, from cells (a live batch) or from figures not yet
spread over their cells (a rebuild).

A figure adds to some twenty cells (``projections.fan_out``: each of its periods, each roll-up).
Live batches spread each figure as it comes. A rebuild instead keeps its figures as they come
(:class:`DeferredState`: about 3 a event, most of them distinct) and spreads them all at once at the
end (:func:`base_rows`): every column is replaced by its rank among the column's values, a cell
becomes one 64-bit number whose order is the primary key's, and the roll-ups are added up and
sorted by numpy, in C. In Python that spreading cost more than anything else in a rebuild but
writing the rows: some 70 counter updates and a sort key per event.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from services.reporting.domain import DISTINCT_METRICS, HISTOGRAMS, PREFIX_LENGTH, histogram_of, join_pairs
from services.reporting.periods import WITHOUT_FULL
from services.reporting.projections import (
    DIMENSIONS,
    PENDING,
    ROLLUP,
    Base,
    Cell,
    Key,
    MemoryState,
    fan_out,
)

#: A cube row: ``(level, *cell, value)``, or ``(level, *cell with the histogram's prefix as metric,
#: total, pairs)``.
Row = tuple[Any, ...]
Ints = npt.NDArray[np.int64]

LEVELS = ("all", *DIMENSIONS, "full")


def level(cell: Cell) -> str:
    """Which roll-up a cell belongs to: ``all`` (no case category), one category's name, or ``full``.
    It leads the cube's primary key, so a report reads only the cells of its roll-up."""
    dims = cell[3:7]
    found = _LEVELS.get(dims)
    if found is None:
        named = [n for n, v in zip(DIMENSIONS, dims, strict=True) if v != ROLLUP]
        found = "all" if not named else named[0] if len(named) == 1 else "full"
        if len(_LEVELS) < 100_000:
            _LEVELS[dims] = found
    return found


_LEVELS: dict[tuple[str, ...], str] = {}


def _key_order(row: Row) -> str:
    """A sort key equal in order to the row's first nine (text) columns: comparing one string is
    several times faster than comparing tuples element by element (values hold no NUL)."""
    return "\x00".join(row[:9])


def cell_rows(cells: Iterable[tuple[Cell, int]]) -> tuple[list[Row], list[Row]]:
    """``(level, *cell, value)`` rows of the non-zero plain cells, and ``(level, *cell, total,
    pairs)`` rows of the histograms (their cells ``d2a:12`` gathered under the metric ``d2a:``),
    both in primary key order (B-tree locality)."""
    plain: list[Row] = []
    histograms: dict[tuple[str, ...], dict[int, int]] = {}
    levels = _LEVELS  # a batch passes here with hundreds of thousands of cells: no call per cell
    for cell, value in cells:
        if not value:
            continue
        if cell[7][:PREFIX_LENGTH] not in HISTOGRAMS or (found := histogram_of(cell[7])) is None:
            plain.append((levels.get(cell[3:7]) or level(cell), *cell, value))
            continue
        key = (*cell[:7], found[0])
        days = histograms.get(key)
        if days is None:
            days = histograms[key] = {}
        days[found[1]] = days.get(found[1], 0) + value
    plain.sort(key=_key_order)
    joined = [
        (level(key), *key, sum(days.values()), pairs)  # type: ignore[arg-type]
        for key, days in histograms.items()
        if (pairs := join_pairs(days))
    ]
    joined.sort(key=_key_order)
    return plain, joined


class _Column:
    """A column's values replaced by their ranks among its distinct values (so that ranks compare
    as the strings do), and where they go in a packed cell (:meth:`place`)."""

    def __init__(self, values: Sequence[str], always: Iterable[str] = ()) -> None:
        self.vocab = sorted(set(values).union(always))
        self.index = {value: n for n, value in enumerate(self.vocab)}
        self.ranks: Ints = np.fromiter(map(self.index.__getitem__, values), dtype=np.int64, count=len(values))
        self.bits = max(1, (len(self.vocab) - 1).bit_length())
        self.names = np.array(self.vocab, dtype=object)
        self.shift = 0

    def place(self, ranks: Ints | int) -> Ints | int:
        return ranks << self.shift

    def ranks_in(self, packed: Ints) -> Ints:
        return (packed >> self.shift) & ((1 << self.bits) - 1)

    def decode(self, packed: Ints) -> list[str]:
        return self.names[self.ranks_in(packed)].tolist()  # type: ignore[no-any-return]


def _first_of_runs(*sorted_keys: Ints) -> Ints:
    """Where each run of equal keys starts, in arrays sorted by them."""
    change = np.zeros(len(sorted_keys[0]), dtype=bool)
    change[:1] = True
    for keys in sorted_keys:
        change[1:] |= keys[1:] != keys[:-1]
    return np.flatnonzero(change)


def base_rows(bases: Iterable[tuple[Base, int]]) -> tuple[list[Row], list[Row]]:
    """What :func:`cell_rows` gives for the cells of these figures (each spread by ``fan_out``),
    computed with numpy: equal, row for row (the unit tests compare them)."""
    items = [(base, delta) for base, delta in bases if delta]
    if not items:
        return [], []
    columns = list(zip(*(base for base, _ in items), strict=True))
    deltas: Ints = np.fromiter((delta for _, delta in items), dtype=np.int64, count=len(items))
    # Each distinct tuple of periods once, its keys flattened.
    sets: dict[tuple[str, ...], int] = {}
    set_of: Ints = np.fromiter(
        (sets.setdefault(periods, len(sets)) for periods in columns[0]), dtype=np.int64, count=len(items)
    )
    period = _Column([key for periods in sets for key in periods])
    lengths: Ints = np.fromiter((len(periods) for periods in sets), dtype=np.int64, count=len(sets))
    province, category = _Column(columns[1]), _Column(columns[2])
    dims = [_Column(values, (ROLLUP,)) for values in columns[3:7]]
    metric = _Column(columns[7])
    levels = _Column(LEVELS)
    # A cell packed in one integer, the primary key's columns from the highest bits down.
    order = (levels, period, province, category, *dims, metric)
    if sum(column.bits for column in order) > 63:  # far more values than any history has
        return cell_rows(_spread(items).items())
    shift = 0
    for column in reversed(order):
        column.shift = shift
        shift += column.bits

    # One entry per figure and period of it.
    per_figure = lengths[set_of]
    figure = np.repeat(np.arange(len(items)), per_figure)
    nth = np.arange(len(figure)) - np.repeat(np.cumsum(per_figure) - per_figure, per_figure)
    period_rank = period.ranks[np.repeat((np.cumsum(lengths) - lengths)[set_of], per_figure) + nth]
    value = deltas[figure]
    common = (
        period.place(period_rank)
        | province.place(province.ranks[figure])
        | category.place(category.ranks[figure])
        | metric.ranks[figure]
    )
    # Years and weeks are not kept with all four categories, but for distinct women.
    full_kept = (
        np.array([key[0] not in WITHOUT_FULL for key in period.vocab])[period_rank]
        | np.array([m in DISTINCT_METRICS for m in metric.vocab])[metric.ranks[figure]]
    )
    blocks: list[Ints] = []
    values: list[Ints] = []
    for name in LEVELS:
        key = common | levels.place(levels.index[name])
        for n, column in enumerate(dims):
            named = name in ("full", DIMENSIONS[n])
            key = key | (column.place(column.ranks[figure]) if named else column.place(column.index[ROLLUP]))
        if name == "full":
            blocks.append(key[full_kept])  # type: ignore[index]
            values.append(value[full_kept])
        else:
            blocks.append(key)  # type: ignore[arg-type]
            values.append(value)

    # Equal cells added up, in key order; the non-zero ones kept.
    keys = np.concatenate(blocks)
    sort = np.argsort(keys, kind="stable")
    keys, summed = keys[sort], np.concatenate(values)[sort]
    first = _first_of_runs(keys)
    keys, summed = keys[first], np.add.reduceat(summed, first)
    nonzero = summed != 0
    keys, summed = keys[nonzero], summed[nonzero]

    found = [histogram_of(m) for m in metric.vocab]
    is_histogram = np.array([f is not None for f in found])[metric.ranks_in(keys)]
    plain_keys = keys[~is_histogram]
    plain = list(zip(*(c.decode(plain_keys) for c in order), summed[~is_histogram].tolist(), strict=True))

    # Histograms: a row per cell but its metric and per prefix, with its days' pairs.
    hist_keys, hist_values = keys[is_histogram], summed[is_histogram]
    metric_of = metric.ranks_in(hist_keys)
    prefixes = sorted({f[0] for f in found if f is not None})
    prefix_of = np.array([prefixes.index(f[0]) if f else -1 for f in found], dtype=np.int64)[metric_of]
    days_of = np.array([f[1] if f else 0 for f in found], dtype=np.int64)[metric_of]
    cell_of = hist_keys >> metric.bits  # prefixes sort as their metrics do
    sort = np.lexsort((days_of, prefix_of, cell_of))
    cell_of, prefix_of, days_of, hist_keys, hist_values = (
        a[sort] for a in (cell_of, prefix_of, days_of, hist_keys, hist_values)
    )
    heads = _first_of_runs(cell_of, prefix_of)
    pairs = [f"{d} {c}" for d, c in zip(days_of.tolist(), hist_values.tolist(), strict=True)]
    if not len(heads):
        return plain, []
    ends = [*heads[1:].tolist(), len(pairs)]
    totals = np.add.reduceat(hist_values, heads).tolist()
    histograms = [
        (*cell, prefixes[prefix], total, ",".join(pairs[start:end]))
        for *cell, prefix, total, start, end in zip(
            *(c.decode(hist_keys[heads]) for c in order[:-1]),
            prefix_of[heads].tolist(),
            totals,
            heads.tolist(),
            ends,
            strict=True,
        )
    ]
    return plain, histograms


def _spread(items: Iterable[tuple[Base, int]]) -> Counter[Cell]:
    cells: Counter[Cell] = Counter()
    for base, delta in items:
        for cell in fan_out(base):
            cells[cell] += delta
    return cells


@dataclass
class DeferredState(MemoryState):
    """A rebuild's state: the projection in memory, its figures kept as they come (not spread over
    their cells until :meth:`take_rows`)."""

    bases: Counter[Base] = field(default_factory=Counter)
    base_pendings: defaultdict[str, Counter[Base]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, base: Base, delta: int, pending_case: str | None) -> None:
        self.bases[base] += delta
        if pending_case is not None:
            self.base_pendings[pending_case][base] += delta

    def bump(self, key: Key, delta: int) -> None:
        self.bases[key] += delta  # type: ignore[index]  # a base: this state keeps bases

    def pending(self, case_hash: str) -> list[tuple[Key, int]]:
        found = self.base_pendings.get(case_hash)
        return list(found.items()) if found else []

    def clear_pending(self, case_hash: str) -> None:
        self.base_pendings.pop(case_hash, None)

    def size(self) -> int:
        return len(self.bases)

    def take_rows(self) -> tuple[list[Row], list[Row]]:
        taken, self.bases = self.bases, Counter()
        return base_rows(taken.items())

    def pending_cells(self) -> Iterable[tuple[str, Cell, int]]:
        for case_hash, bases in self.base_pendings.items():
            cells: Counter[Cell] = Counter()
            for base, delta in bases.items():
                for cell in fan_out(base):
                    if PENDING in cell[3:7]:
                        cells[cell] += delta
            for cell, delta in cells.items():
                yield case_hash, cell, delta
