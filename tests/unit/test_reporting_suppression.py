"""Small-cell suppression: every figure below k hidden, and no hidden figure recoverable from the
totals, by an attacker who subtracts along rows and columns or solves the whole linear system."""

from __future__ import annotations

import random
from collections import Counter
from fractions import Fraction

import pytest

from services.reporting.queries import Block, Report, render
from services.reporting.suppression import Line, determined, grid_lines, suppress


def grid(interior: list[list[int]]) -> list[int]:
    """Row-major values of a table with row totals, column totals and the grand total."""
    rows = [[*row, sum(row)] for row in interior]
    totals = [sum(col) for col in zip(*rows, strict=True)]
    return [v for row in [*rows, totals] for v in row]


def recover_by_subtraction(values: list[int], hidden: set[int], lines: list[Line]) -> dict[int, int]:
    """What an attacker works out by repeatedly finding a line with a single unknown."""
    known = {i: v for i, v in enumerate(values) if i not in hidden}
    progress = True
    while progress:
        progress = False
        for line in lines:
            unknown = [m for m in line.members if m not in known]
            if len(unknown) == 1:
                (u,) = unknown
                parts_known = sum(known[p] for p in line.parts if p in known)
                known[u] = known[line.total] - parts_known if u != line.total else parts_known
                progress = True
    return {i: known[i] for i in hidden if i in known}


def recover_by_algebra(values: list[int], hidden: set[int], lines: list[Line]) -> set[int]:
    """Hidden cells fixed by the linear system (exact rational elimination, written separately)."""
    unknowns = sorted(hidden)
    col = {u: n for n, u in enumerate(unknowns)}
    rows = []
    for line in lines:
        row = [Fraction(0)] * len(unknowns)
        for p in line.parts:
            if p in col:
                row[col[p]] += 1
        if line.total in col:
            row[col[line.total]] -= 1
        if any(row):
            rows.append(row)
    fixed = set()
    for target in range(len(unknowns)):
        # e_target in the row space <=> rank([A; e]) == rank(A)
        def rank(matrix: list[list[Fraction]]) -> int:
            m = [list(r) for r in matrix]
            r = 0
            for c in range(len(unknowns)):
                pivot = next((i for i in range(r, len(m)) if m[i][c] != 0), None)
                if pivot is None:
                    continue
                m[r], m[pivot] = m[pivot], m[r]
                for i in range(len(m)):
                    if i != r and m[i][c] != 0:
                        f = m[i][c] / m[r][c]
                        m[i] = [a - f * b for a, b in zip(m[i], m[r], strict=True)]
                r += 1
            return r

        unit = [Fraction(int(i == target)) for i in range(len(unknowns))]
        if rank(rows) == rank([*rows, unit]):
            fixed.add(unknowns[target])
    return fixed


def test_primary_suppression_hides_every_cell_below_k() -> None:
    values = grid([[12, 3, 40], [25, 30, 8]])
    _, lines = grid_lines(2, 3)
    hidden = suppress(values, lines, k=5)
    assert {i for i, v in enumerate(values) if v < 5} <= hidden


def test_a_single_hidden_cell_cannot_be_recovered_from_its_row_and_column_totals() -> None:
    interior = [[12, 3, 40], [25, 30, 8], [17, 22, 19]]
    values = grid(interior)
    _, lines = grid_lines(3, 3)
    # Primary suppression alone: the 3 is recoverable (row total minus the rest).
    primary = {i for i, v in enumerate(values) if v < 5}
    assert recover_by_subtraction(values, primary, lines) == {1: 3}
    hidden = suppress(values, lines, k=5)
    assert len(hidden) > len(primary)
    assert recover_by_subtraction(values, hidden, lines) == {}
    assert recover_by_algebra(values, hidden, lines) == set()


@pytest.mark.parametrize("seed", range(25))
def test_random_tables_leak_nothing(seed: int) -> None:
    rng = random.Random(seed)
    n_rows, n_cols = rng.randint(1, 5), rng.randint(0, 6)
    k = rng.randint(3, 11)
    if n_cols == 0:
        column = [rng.choice([0, 1, 2, 4, 7, 12, 30, 80]) for _ in range(n_rows)]
        values = [*column, sum(column)]
    else:
        values = grid(
            [[rng.choice([0, 1, 2, 4, 7, 12, 30, 80]) for _ in range(n_cols)] for _ in range(n_rows)]
        )
    size, lines = grid_lines(n_rows, n_cols)
    assert len(values) == size
    hidden = suppress(values, lines, k=k)
    assert {i for i, v in enumerate(values) if v < k} <= hidden
    assert recover_by_subtraction(values, hidden, lines) == {}
    assert recover_by_algebra(values, hidden, lines) == set()
    assert determined(hidden, values, lines) == set()


def test_k_is_bounded() -> None:
    with pytest.raises(ValueError, match="between 2 and 11"):
        suppress([1, 2], [], k=12)


def test_donor_report_shows_small_cells_as_less_than_k_and_hides_a_partner() -> None:
    def block(**figures: int) -> Block:
        b = Block()
        b.figures = Counter(figures)
        return b

    rows = {("01",): block(cases_opened=40), ("31",): block(cases_opened=3), ("92",): block(cases_opened=22)}
    report = Report(("province",), block(cases_opened=65), rows)
    exact = render(report)
    assert [r["totals"]["cases_opened"] for r in exact["rows"]] == [40, 3, 22]
    donor = render(report, k=5)
    shown = [r["totals"]["cases_opened"] for r in donor["rows"]]
    assert shown[1] == "<5"
    # The 3 cannot be worked out as total - 40 - 22: another province (the smallest, 22) is hidden too.
    assert shown.count("<5") == 2 and donor["totals"]["cases_opened"] == 65
    assert donor["totals"]["sessions"] == "<5"  # a zero is below k as well
    assert donor["totals"]["completion_rate"] is None  # a rate of hidden figures is not shown
