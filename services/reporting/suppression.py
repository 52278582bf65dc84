"""Small-cell suppression for donor reports: pure, no I/O.

A table is a list of figures and the lines that tie them: each line says its parts add up to its
total (a row of a province-by-category table and the row total, a column and its total, the totals
and the grand total). Every figure below ``k`` is hidden (primary suppression); then more figures
are hidden (complementary suppression) until no hidden figure can be worked out from what is shown:
no line has exactly one hidden member, and no hidden figure is a linear combination of the lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

K_DEFAULT = 5
K_MAX = 11
_P = (1 << 61) - 1  # arithmetic modulo a large prime: exact rank for 0/±1 systems of this size


@dataclass(frozen=True)
class Line:
    parts: tuple[int, ...]
    total: int

    @property
    def members(self) -> tuple[int, ...]:
        return (*self.parts, self.total)


def label(k: int) -> str:
    """How a hidden figure is shown."""
    return f"<{k}"


def determined(hidden: set[int], values: Sequence[int], lines: Sequence[Line]) -> set[int]:
    """The hidden figures an attacker can compute exactly from the shown ones and the lines."""
    unknowns = sorted(hidden)
    index = {cell: n for n, cell in enumerate(unknowns)}
    rows: list[list[int]] = []
    for line in lines:
        row = [0] * len(unknowns)
        for part in line.parts:
            if part in index:
                row[index[part]] = (row[index[part]] + 1) % _P
        if line.total in index:
            row[index[line.total]] = (row[index[line.total]] - 1) % _P
        if any(row):
            rows.append(row)
    # Reduced row echelon form; x_i is determined iff some reduced row is the unit vector e_i.
    pivot_rows: list[list[int]] = []
    col = 0
    r = 0
    n = len(unknowns)
    while r < len(rows) and col < n:
        pivot = next((i for i in range(r, len(rows)) if rows[i][col]), None)
        if pivot is None:
            col += 1
            continue
        rows[r], rows[pivot] = rows[pivot], rows[r]
        inv = pow(rows[r][col], _P - 2, _P)
        rows[r] = [(v * inv) % _P for v in rows[r]]
        for i in range(len(rows)):
            if i != r and rows[i][col]:
                f = rows[i][col]
                rows[i] = [(a - f * b) % _P for a, b in zip(rows[i], rows[r], strict=True)]
        r += 1
        col += 1
    pivot_rows = rows[:r]
    out = set()
    for row in pivot_rows:
        nonzero = [i for i, v in enumerate(row) if v]
        if len(nonzero) == 1:
            out.add(unknowns[nonzero[0]])
    return out


def suppress(values: Sequence[int], lines: Sequence[Line], k: int = K_DEFAULT) -> set[int]:
    """Indexes of ``values`` to hide: every figure below ``k`` and enough others to protect them."""
    if not 2 <= k <= K_MAX:
        raise ValueError(f"k must be between 2 and {K_MAX}, not {k}")
    hidden = {i for i, v in enumerate(values) if v < k}

    def hide_another(line: Line) -> bool:
        shown = [i for i in line.parts if i not in hidden] or (
            [line.total] if line.total not in hidden else []
        )
        if not shown:
            return False
        hidden.add(min(shown, key=lambda i: (values[i], i)))
        return True

    while True:
        changed = False
        for line in lines:
            if sum(1 for m in line.members if m in hidden) == 1:
                changed |= hide_another(line)
        if changed:
            continue
        exposed = determined(hidden, values, lines)
        if not exposed:
            return hidden
        for cell in sorted(exposed):
            for line in lines:
                if cell in line.members and hide_another(line):
                    changed = True
                    break
        if not changed:  # nothing left to hide in those lines: hide every figure
            return set(range(len(values)))


def grid_lines(n_rows: int, n_cols: int) -> tuple[int, list[Line]]:
    """Lines of an ``n_rows`` x ``n_cols`` table with row totals, column totals and a grand total,
    laid out row-major in an (n_rows+1) x (n_cols+1) list (last column/row = totals)."""
    width = n_cols + 1

    def at(r: int, c: int) -> int:
        return r * width + c

    lines = [Line(tuple(at(r, c) for c in range(n_cols)), at(r, n_cols)) for r in range(n_rows + 1)]
    lines += [Line(tuple(at(r, c) for r in range(n_rows)), at(n_rows, c)) for c in range(n_cols + 1)]
    return (n_rows + 1) * width, [line for line in lines if line.parts]
