"""A rebuild's figures, spread over their cells with numpy at the end (``rollup.Rollup``), give
exactly the rows the live path gives by spreading each figure as it comes (``fan_out`` then
``cell_rows``)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator

from services.reporting.domain import DAYS_TO_ACCEPTANCE, DAYS_TO_COMPLETION
from services.reporting.periods import Phases
from services.reporting.projections import PENDING, Base, Cell, Hasher, MemoryState, Projection, fan_out
from services.reporting.rollup import DeferredState, Rollup, Row, cell_rows
from shared.events import CaseOpened
from tests.unit.test_reporting_history import PHASES, generate


def _spread(bases: Counter[Base]) -> Counter[Cell]:
    cells: Counter[Cell] = Counter()
    for base, delta in bases.items():
        for cell in fan_out(base):
            cells[cell] += delta
    return cells


def _joined(chunks: Iterator[tuple[list[Row], list[Row]]]) -> tuple[list[Row], list[Row]]:
    plain: list[Row] = []
    histograms: list[Row] = []
    for more_plain, more_histograms in chunks:
        plain += more_plain
        histograms += more_histograms
    return plain, histograms


def base_rows(bases: Iterable[tuple[Base, int]]) -> tuple[list[Row], list[Row]]:
    """The rows of these figures spread with numpy (:class:`Rollup`)."""
    rollup = Rollup()
    rollup.add(bases)
    return _joined(rollup.rows())


def _random_bases(rng: random.Random, n: int) -> Counter[Base]:
    period_sets = [
        ("D2025-07-14", "W2025-29", "M2025-07", "Q2025-3", "Y2025", "Pphase-2"),
        ("D2024-12-31", "W2025-01", "M2024-12", "Q2024-4", "Y2024"),
        ("M2025-07",),
        ("Y2025",),
        ("W2025-29",),
        ("D2025-07-14", "W2025-29"),
    ]
    metrics = [
        "sessions",
        "women_reached",
        "women_supported",
        "f:women_reached",
        "referrals_completed",
        *(
            f"{prefix}{days}"
            for prefix in (DAYS_TO_ACCEPTANCE, DAYS_TO_COMPLETION)
            for days in (0, 3, 12, 40)
        ),
    ]
    bases: Counter[Base] = Counter()
    for _ in range(n):
        base: Base = (
            rng.choice(period_sets),
            rng.choice(["01", "31", "79"]),
            rng.choice(["", "legal", "health"]),
            rng.choice(["hotline", "sms", PENDING, "none"]),
            rng.choice(["labour", "marriage", PENDING]),
            rng.choice(["deported", "voluntary", PENDING]),
            rng.choice(["18_24", "25_34", PENDING]),
            rng.choice(metrics),
        )
        bases[base] += rng.choice([1, 1, 1, 2, -1])  # some figures net to nothing, some negative
    return bases


def test_base_rows_equal_the_rows_of_the_spread_cells() -> None:
    rng = random.Random(7)
    for n in (1, 5, 200, 3000):
        bases = _random_bases(rng, n)
        plain, histograms = base_rows(bases.items())
        expected = cell_rows(_spread(bases).items())
        assert plain == expected[0]
        assert histograms == expected[1]
    assert base_rows([]) == ([], [])


def test_a_history_kept_as_figures_gives_the_cells_spread_as_they_come() -> None:
    # Events in shuffled order: figures counted before her case.opened move to her categories; and
    # some cases never opened: their figures stay pending.
    events = [
        e
        for n, e in enumerate(generate(300, seed=11).events)
        if not (isinstance(e, CaseOpened) and n % 10 == 0)
    ]
    random.Random(3).shuffle(events)
    hasher = Hasher(b"k" * 32)
    spread = MemoryState()
    kept_all, kept_few = DeferredState(), DeferredState(limit=500)  # the latter spreads ~every 500
    for state in (spread, kept_all, kept_few):
        projection = Projection(state, hasher, Phases.of(PHASES))
        for event in events:
            projection.apply(event)
            if isinstance(state, DeferredState):
                state.spread_if_full()
    expected = cell_rows(spread.cube.items())
    assert any(PENDING in row[4:8] for row in expected[0])  # some cases are never opened
    pending = sorted(spread.pending_cells())
    for state in (kept_all, kept_few):
        plain, histograms = _joined(state.rows(chunk=1000))  # in chunks, in key order
        assert (plain, histograms) == expected
        assert pending and sorted(state.pending_cells()) == pending
    assert kept_all.spreads == 1 and kept_few.spreads > 10
    assert len(kept_few.rollup.runs) == 0  # merged and handed out


class _Full(dict[str, str]):
    """A hasher's cache that is full (it keeps up to 1,000,000 ids: fewer than a big rebuild's)."""

    def __len__(self) -> int:
        return 10**9


def test_a_rebuilds_facts_share_their_days_hashes_and_a_womans_periods_share_one_fact() -> None:
    """Memory: a rebuild keeps every fact (2.3 an event, 25M at 1,000,000 cases). A day is one date
    object however many facts fall on it, so is her case's hash once the hasher keeps no more, and
    the facts that count her once in each of a session's periods (month, quarter, year, phase, all
    time) are one ``Fact`` under several keys."""
    state = MemoryState()
    hasher = Hasher(b"test-reporting-key-0123456789")
    hasher._cache = _Full()
    projection = Projection(state, hasher, Phases.of(PHASES))
    for event in generate(200, seed=8).events:
        projection.apply(event)
    facts = list(state.facts.values())
    days = {fact.day for fact in facts}
    assert len({id(fact.day) for fact in facts}) == len(days)
    women = {fact.case_hash for fact in facts if fact.case_hash}
    assert len({id(fact.case_hash) for fact in facts if fact.case_hash}) == len(women) > 150
    distinct = [fact for fact in facts if fact.kind == "distinct"]
    assert len({id(fact) for fact in distinct}) * 3 < len(distinct)
