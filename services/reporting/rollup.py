"""Cube rows, in the cube's primary key order, from cells (a live batch) or from figures not yet
spread over their cells (a rebuild).

A figure adds to some twenty cells (``projections.fan_out``: each of its periods, each roll-up).
Live batches spread each figure as it comes (:func:`cell_rows`). A rebuild instead keeps its
figures as they come (:class:`DeferredState`: about 3 an event, most of them distinct) and spreads
them in bulk with numpy (:class:`Rollup`): each column's values get codes, a cell is one 64-bit
integer of its codes, and the cells are added up and sorted in C, into runs merged as they grow;
at the end the codes become ranks (string order), so the integers sort as the primary key and the
rows come out in the order the B-tree wants them. In Python that spreading cost more than anything
in a rebuild but writing the rows: some 70 counter updates and a sort key per event. The unit
tests check that both ways give the same rows.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
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


class Vocabulary:
    """Codes for one column's values, in the order they were first seen."""

    def __init__(self, always: Iterable[str] = ()) -> None:
        self.codes: dict[str, int] = {}
        for value in always:
            self.codes.setdefault(value, len(self.codes))

    def encode(self, values: Iterable[str], count: int) -> Ints:
        codes = self.codes
        return np.fromiter((codes.setdefault(v, len(codes)) for v in values), dtype=np.int64, count=count)

    @property
    def bits(self) -> int:
        return max(1, (len(self.codes) - 1).bit_length())

    def flags(self, test: Callable[[str], bool]) -> npt.NDArray[np.bool_]:
        """``test`` of each code's value, indexed by code."""
        return np.fromiter(map(test, self.codes), dtype=bool, count=len(self.codes))

    def ranks(self) -> Ints:
        """Each code's rank among the values in string order (the cube's key order)."""
        values = list(self.codes)
        ranks = np.empty(len(values), dtype=np.int64)
        ranks[sorted(range(len(values)), key=values.__getitem__)] = np.arange(len(values))
        return ranks

    def in_order(self) -> npt.NDArray[np.object_]:
        return np.array(sorted(self.codes), dtype=object)


def _first_of_runs(*sorted_keys: Ints) -> Ints:
    """Where each run of equal keys starts, in arrays sorted by them."""
    change = np.zeros(len(sorted_keys[0]), dtype=bool)
    change[:1] = True
    for keys in sorted_keys:
        change[1:] |= keys[1:] != keys[:-1]
    return np.flatnonzero(change)


@dataclass
class Run:
    """Cells added up: each one integer (its columns' codes, packed with ``widths`` bits, the
    primary key's first column in the highest bits), sorted, none zero."""

    keys: Ints
    values: Ints
    widths: tuple[int, ...]

    def keys_in(self, widths: tuple[int, ...]) -> Ints:
        """The keys packed with ``widths`` (wider as more values are seen: same order)."""
        return self.keys if widths == self.widths else _pack(_unpack(self.keys, self.widths), widths)


def _shifts(widths: Sequence[int]) -> list[int]:
    out, shift = [], 0
    for width in reversed(widths):
        out.append(shift)
        shift += width
    return out[::-1]


def _unpack(keys: Ints, widths: Sequence[int]) -> list[Ints]:
    return [
        (keys >> shift) & ((1 << width) - 1) for shift, width in zip(_shifts(widths), widths, strict=True)
    ]


def _pack(columns: Sequence[Ints | int], widths: Sequence[int]) -> Ints:
    key: Ints = np.zeros(1, dtype=np.int64)
    for column, shift in zip(columns, _shifts(widths), strict=True):
        key = key | (np.asarray(column, dtype=np.int64) << shift)
    return key


def _added_up(keys: Ints, values: Ints, widths: tuple[int, ...]) -> Run:
    """Equal keys added up, sorted (a stable sort: runs already sorted are merged, not re-sorted)."""
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    if len(keys):
        first = _first_of_runs(keys)
        keys, values = keys[first], np.add.reduceat(values, first)
    nonzero = values != 0
    return Run(keys[nonzero], values[nonzero], widths)


class Rollup:
    """A rebuild's figures spread over their cells and added up in numpy (:meth:`add`), as a few
    sorted runs merged as they grow (each cell some 16 bytes); :meth:`rows` gives the cube's rows."""

    def __init__(self) -> None:
        # The cube's primary key, in order.
        self.columns = (
            Vocabulary(LEVELS),
            *(Vocabulary() for _ in ("period", "province", "category")),
            *(Vocabulary((ROLLUP,)) for _ in DIMENSIONS),
            Vocabulary(),
        )
        self.runs: list[Run] = []

    def _widths(self) -> tuple[int, ...]:
        widths = tuple(column.bits for column in self.columns)
        if sum(widths) > 63:  # some 50 bits for ten years of days and histograms
            raise ValueError(f"a cube cell needs {sum(widths)} bits, more than 63: {widths}")
        return widths

    def add(self, bases: Iterable[tuple[Base, int]]) -> None:
        """Spread these figures over their cells (each as ``fan_out`` does) and add them."""
        items = [(base, delta) for base, delta in bases if delta]
        if not items:
            return
        n = len(items)
        level, period, province, category, *dims, metric = self.columns
        columns = list(zip(*(base for base, _ in items), strict=True))
        deltas: Ints = np.fromiter((delta for _, delta in items), dtype=np.int64, count=n)
        # Each distinct tuple of periods once, its keys flattened.
        sets: dict[tuple[str, ...], int] = {}
        set_of: Ints = np.fromiter(
            (sets.setdefault(p, len(sets)) for p in columns[0]), dtype=np.int64, count=n
        )
        lengths: Ints = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
        flat = period.encode((key for periods in sets for key in periods), int(lengths.sum()))
        province_of = province.encode(columns[1], n)
        category_of = category.encode(columns[2], n)
        dims_of = [column.encode(values, n) for column, values in zip(dims, columns[3:7], strict=True)]
        metric_of = metric.encode(columns[7], n)
        widths = self._widths()

        # One entry per figure and period of it.
        per_figure = lengths[set_of]
        figure = np.repeat(np.arange(n), per_figure)
        nth = np.arange(len(figure)) - np.repeat(np.cumsum(per_figure) - per_figure, per_figure)
        period_of = flat[np.repeat((np.cumsum(lengths) - lengths)[set_of], per_figure) + nth]
        value = deltas[figure]
        common = [province_of[figure], category_of[figure]]
        # Years and weeks are not kept with all four categories, but for distinct women.
        full_kept = period.flags(lambda key: key[0] not in WITHOUT_FULL)[period_of]
        full_kept |= metric.flags(lambda m: m in DISTINCT_METRICS)[metric_of[figure]]
        blocks: list[Ints] = []
        values: list[Ints] = []
        for name in LEVELS:
            named = [
                column_of[figure] if name in ("full", dimension) else column.codes[ROLLUP]
                for column, column_of, dimension in zip(dims, dims_of, DIMENSIONS, strict=True)
            ]
            key = _pack([level.codes[name], period_of, *common, *named, metric_of[figure]], widths)
            blocks.append(key[full_kept] if name == "full" else key)
            values.append(value[full_kept] if name == "full" else value)
        self.runs.append(_added_up(np.concatenate(blocks), np.concatenate(values), widths))
        # Merged while the last run is as big as the one before: few runs, each cell merged a few times.
        while len(self.runs) > 1 and len(self.runs[-1].keys) * 2 >= len(self.runs[-2].keys):
            self._merge_last_two()

    def _merge_last_two(self) -> None:
        widths = self._widths()
        older, newer = self.runs[-2:]
        keys = np.concatenate([older.keys_in(widths), newer.keys_in(widths)])
        self.runs[-2:] = [_added_up(keys, np.concatenate([older.values, newer.values]), widths)]

    def rows(self, chunk: int = 500_000) -> Iterator[tuple[list[Row], list[Row]]]:
        """The cube's rows, as :func:`cell_rows` gives them for the same cells: ``(plain,
        histograms)`` pairs of up to ``chunk`` rows each, all plain ones first; each list in key
        order."""
        while len(self.runs) > 1:
            self._merge_last_two()
        if not self.runs:
            return
        run = self.runs.pop()
        widths = self._widths()
        # Codes (first seen) to ranks (string order): packed, the primary key's order.
        # One column at a time: a history of 100,000 cases has some 10 million cells.
        coded, keys = run.keys_in(widths), np.zeros(len(run.keys), dtype=np.int64)
        for column, shift, width in zip(self.columns, _shifts(widths), widths, strict=True):
            keys |= column.ranks()[(coded >> shift) & ((1 << width) - 1)] << shift
        del coded
        order = np.argsort(keys)
        keys, values = keys[order], run.values[order]
        del run, order
        names = [column.in_order() for column in self.columns]
        metric_names = names[-1]
        found = [histogram_of(m) for m in metric_names]
        is_histogram = np.array([f is not None for f in found], dtype=bool)[(keys & ((1 << widths[-1]) - 1))]

        def decoded(at: Ints, upto: int) -> list[list[str]]:
            columns = _unpack(at, widths)
            return [names[n][columns[n]].tolist() for n in range(upto)]

        plain_keys, plain_values = keys[~is_histogram], values[~is_histogram]
        for start in range(0, len(plain_keys), chunk):
            part = plain_keys[start : start + chunk]
            yield list(zip(*decoded(part, 9), plain_values[start : start + chunk].tolist(), strict=True)), []
        del plain_keys, plain_values

        # Histograms: a row per cell but its metric and per prefix, with its days' pairs.
        keys, values = keys[is_histogram], values[is_histogram]
        metric_of = keys & ((1 << widths[-1]) - 1)
        prefixes = sorted({f[0] for f in found if f is not None})
        prefix_of = np.array([prefixes.index(f[0]) if f else -1 for f in found], dtype=np.int64)[metric_of]
        days_of = np.array([f[1] if f else 0 for f in found], dtype=np.int64)[metric_of]
        cell_of = keys >> widths[-1]  # prefixes sort as their metrics do
        order = np.lexsort((days_of, prefix_of, cell_of))
        cell_of, prefix_of, days_of, keys, values = (
            a[order] for a in (cell_of, prefix_of, days_of, keys, values)
        )
        heads = _first_of_runs(cell_of, prefix_of) if len(keys) else np.zeros(0, dtype=np.int64)
        ends = np.append(heads[1:], len(keys))
        totals = np.add.reduceat(values, heads) if len(heads) else values[:0]
        for start in range(0, len(heads), chunk):
            part = slice(start, start + chunk)
            first, last = int(heads[part][0]), int(ends[part][-1])
            pairs = [
                f"{d} {c}"
                for d, c in zip(days_of[first:last].tolist(), values[first:last].tolist(), strict=True)
            ]
            yield (
                [],
                [
                    (*cell, prefixes[prefix], total, ",".join(pairs[begin - first : end - first]))
                    for *cell, prefix, total, begin, end in zip(
                        *decoded(keys[heads[part]], 8),
                        prefix_of[heads[part]].tolist(),
                        totals[part].tolist(),
                        heads[part].tolist(),
                        ends[part].tolist(),
                        strict=True,
                    )
                ],
            )


@dataclass
class DeferredState(MemoryState):
    """A rebuild's state: the projection in memory, its figures kept as they come; every ``limit``
    distinct ones are spread over their cells: handed to ``sink`` (a rebuild's: ``spreader``, a
    process of its own), else here (:class:`Rollup`, far less memory a cell than a ``Counter``),
    whose :meth:`rows` gives the cube's rows at the end."""

    limit: int = 500_000
    sink: Callable[[Iterable[tuple[Base, int]]], None] | None = None
    bases: Counter[Base] = field(default_factory=Counter)
    base_pendings: defaultdict[str, Counter[Base]] = field(default_factory=lambda: defaultdict(Counter))
    rollup: Rollup = field(default_factory=Rollup)
    #: How many times figures were spread (every ``limit``, and once at the end).
    spreads: int = 0

    def add(self, base: Base, delta: int, pending_case: str | None) -> None:
        bases = self.bases  # no Counter.__missing__ call: most figures are new
        bases[base] = bases.get(base, 0) + delta
        if pending_case is not None:
            self.base_pendings[pending_case][base] += delta

    def bump(self, key: Key, delta: int) -> None:
        self.bases[key] += delta  # type: ignore[index]  # a base: this state keeps bases

    def pending(self, case_hash: str) -> list[tuple[Key, int]]:
        found = self.base_pendings.get(case_hash)
        return list(found.items()) if found else []

    def clear_pending(self, case_hash: str) -> None:
        self.base_pendings.pop(case_hash, None)

    def spread_if_full(self) -> None:
        """After an event: once there are ``limit`` figures kept, spread them."""
        if len(self.bases) >= self.limit:
            self.spread()

    def spread(self) -> None:
        """Spread the figures kept so far (to the sink, else here), and keep none."""
        taken, self.bases = self.bases, Counter()
        self.spreads += 1
        (self.sink or self.rollup.add)(taken.items())

    def rows(self, chunk: int = 500_000) -> Iterator[tuple[list[Row], list[Row]]]:
        """The cube's rows (:meth:`Rollup.rows`), once; not with a sink (it has the figures)."""
        if self.sink is not None:
            raise RuntimeError("the figures went to the sink: it writes the cube")
        self.spread()
        return self.rollup.rows(chunk)

    def pending_cells(self) -> Iterable[tuple[str, Cell, int]]:
        for case_hash, bases in self.base_pendings.items():
            cells: Counter[Cell] = Counter()
            for base, delta in bases.items():
                for cell in fan_out(base):
                    if PENDING in cell[3:7]:
                        cells[cell] += delta
            for cell, delta in cells.items():
                yield case_hash, cell, delta
