"""Reporting periods: which pre-aggregated period keys a day falls in, and which key (if any)
a requested ``from``..``to`` range is. Pure, no I/O.

Keys: ``D2025-07-14`` (day), ``W2025-29`` (ISO week, Monday to Sunday), ``M2025-07`` (month),
``Q2025-3`` (quarter), ``Y2025`` (year), ``Pphase-1`` (a configured project phase) and ``ALL``
(since the beginning)."""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

ALL = "ALL"


def day_key(d: date) -> str:
    return f"D{d.isoformat()}"


def week_key(d: date) -> str:
    year, week, _ = d.isocalendar()
    return f"W{year:04d}-{week:02d}"


def week_days(key: str) -> tuple[str, ...]:
    """The day keys of a week key (``W2025-29`` -> ``D2025-07-14`` .. ``D2025-07-20``)."""
    monday = date.fromisocalendar(int(key[1:5]), int(key[6:]), 1)
    return tuple(day_key(monday + timedelta(days=n)) for n in range(7))


def day_run_keys(start: date, end: date) -> tuple[str, ...]:
    """The additive keys of the days ``start``..``end``: the whole weeks among them as their week
    keys, the other days as day keys, in order (a week's row stands for seven days' rows)."""
    out: list[str] = []
    d = start
    while d <= end:
        if d.weekday() == 0 and d + timedelta(days=6) <= end:
            out.append(week_key(d))
            d += timedelta(days=7)
        else:
            out.append(day_key(d))
            d += timedelta(days=1)
    return tuple(out)


def month_key(d: date) -> str:
    return f"M{d.year:04d}-{d.month:02d}"


def quarter_key(d: date) -> str:
    return f"Q{d.year:04d}-{(d.month - 1) // 3 + 1}"


def year_key(d: date) -> str:
    return f"Y{d.year:04d}"


def phase_key(name: str) -> str:
    return f"P{name}"


@dataclass(frozen=True)
class Phases:
    """The configured project phases (name -> inclusive date range)."""

    ranges: tuple[tuple[str, date, date], ...] = ()

    @classmethod
    def of(cls, phases: Mapping[str, tuple[date, date]]) -> Phases:
        return cls(tuple(sorted((name, start, end) for name, (start, end) in phases.items())))

    def containing(self, d: date) -> tuple[str, ...]:
        return tuple(phase_key(name) for name, start, end in self.ranges if start <= d <= end)

    def get(self, name: str) -> tuple[date, date] | None:
        for n, start, end in self.ranges:
            if n == name:
                return start, end
        return None


ALL_MONTHS = "M*"


def additive_keys(d: date, phases: Phases) -> tuple[str, ...]:
    """The period keys a count on day ``d`` adds to: its day, its week, its month, its year and the
    phases containing it (quarters and all time are sums of months or years; a year is kept whole
    because summing its twelve months made grouped yearly reports too slow, and a week because a
    range of days read day by day was, over a million cases; neither with all four case
    categories, see ``projections.py``)."""
    return (day_key(d), week_key(d), month_key(d), year_key(d), *phases.containing(d))


def distinct_keys(d: date, phases: Phases) -> tuple[str, ...]:
    """The period keys a distinct count (women reached) is kept for: distinct counts do not add up,
    so every month, quarter, year, phase and all time has its own."""
    return (month_key(d), quarter_key(d), year_key(d), *phases.containing(d), ALL)


@dataclass(frozen=True)
class Block:
    """A part of a range of days: a kept period (``key``: a month, quarter or year) or days (None)."""

    start: date
    end: date
    key: str | None = None


@dataclass(frozen=True)
class Plan:
    """Where a report over a range reads its figures: ``additive`` period keys (``M*`` = every month;
    None = sum the days of the range; a year's or week's key stands for its months or days where it
    is not kept, see :func:`kept_with_all_four`, and a whole year's months for its key where it is,
    see :func:`whole_years`) and the ``distinct`` key (None = count from the facts). A range that is no
    kept period but holds whole months is read in ``blocks`` (see :func:`split`): its additive keys
    are its months and the days at either end, its distinct women are those of its kept periods
    and its days, less the repeats across blocks read from the facts."""

    additive: tuple[str, ...] | None
    distinct: str | None
    blocks: tuple[Block, ...] = ()


def split(start: date, end: date) -> tuple[Block, ...]:
    """``start``..``end`` as the longest kept periods that fit (years, quarters, months, from the
    start) and the days left before the first and after the last."""
    out: list[Block] = []
    d = start
    while d <= end:
        month_end = month_range(d.year, d.month)[1]
        found = None
        if d.day == 1:
            for period_end, key in (
                (date(d.year, 12, 31) if d.month == 1 else None, year_key(d)),
                (month_range(d.year, d.month + 2)[1] if d.month % 3 == 1 else None, quarter_key(d)),
                (month_end, month_key(d)),
            ):
                if period_end is not None and period_end <= end:
                    found = Block(d, period_end, key)
                    break
        if found is None:  # days: to the end of the month, or of the range
            found = Block(d, min(end, month_end))
        out.append(found)
        d = found.end + timedelta(days=1)
    return tuple(out)


def block_keys(blocks: tuple[Block, ...]) -> tuple[str, ...]:
    """The additive period keys of ``blocks``: their days (by weeks, see :func:`day_run_keys`), and
    the months of their kept periods."""
    out: list[str] = []
    for b in blocks:
        out += day_run_keys(b.start, b.end) if b.key is None else months_between(b.start, b.end)
    return tuple(out)


def each_day(start: date, end: date) -> list[date]:
    """Every day from ``start`` to ``end`` inclusive."""
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def plan(start: date | None, end: date | None, phases: Phases) -> Plan:
    key = key_for_range(start, end, phases)
    if key is None and start is not None and end is not None:
        blocks = split(start, end)
        if any(b.key for b in blocks):
            return Plan(block_keys(blocks), None, blocks)
    if key is None and start is not None and end is not None:
        return Plan(day_run_keys(start, end), None)
    if key is None or key.startswith("D"):
        return Plan((key,) if key else None, None)
    if key == ALL:
        return Plan((ALL_MONTHS,), ALL)
    if key.startswith("Q"):
        assert start is not None and end is not None
        return Plan(tuple(months_between(start, end)), key)
    return Plan((key,), key)


def month_range(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def key_for_range(start: date | None, end: date | None, phases: Phases) -> str | None:
    """The pre-aggregated key that is exactly ``start``..``end``, or None (then figures are summed
    from days and distinct counts come from the facts)."""
    if start is None and end is None:
        return ALL
    if start is None or end is None:
        return None
    if start == end:
        return day_key(start)
    for name, p_start, p_end in phases.ranges:
        if (start, end) == (p_start, p_end):
            return phase_key(name)
    if start.day != 1:
        return None
    if (start, end) == month_range(start.year, start.month):
        return month_key(start)
    if start.month % 3 == 1 and end == month_range(start.year, start.month + 2)[1]:
        return quarter_key(start)
    if start.month == 1 and end == date(start.year, 12, 31):
        return year_key(start)
    return None


def parse_period(text: str, phases: Phases) -> tuple[date, date]:
    """``2025``, ``2025-Q3``, ``2025-07``, ``2025-07-14`` or a phase name -> an inclusive range;
    ``ValueError`` saying what is accepted."""
    t = text.strip()
    found = phases.get(t.removeprefix("phase:"))
    if found:
        return found
    try:
        if len(t) == 4 and t.isdigit():
            return date(int(t), 1, 1), date(int(t), 12, 31)
        if len(t) == 7 and t[4:6].upper() == "-Q" and t[6] in "1234":
            q = int(t[6])
            return date(int(t[:4]), 3 * q - 2, 1), month_range(int(t[:4]), 3 * q)[1]
        if len(t) == 7 and t[4] == "-":
            return month_range(int(t[:4]), int(t[5:]))
        if len(t) == 10:
            d = date.fromisoformat(t)
            return d, d
    except ValueError:
        pass
    names = ", ".join(name for name, _, _ in phases.ranges) or "none configured"
    raise ValueError(f"unknown period {text!r}: use YYYY, YYYY-Qn, YYYY-MM, YYYY-MM-DD or a phase ({names})")


def months_between(start: date, end: date) -> list[str]:
    """Month keys from ``start``'s month to ``end``'s month inclusive."""
    out, d = [], start.replace(day=1)
    while d <= end:
        out.append(month_key(d))
        d = (d + timedelta(days=32)).replace(day=1)
    return out


def year_months(key: str) -> tuple[str, ...]:
    """The month keys of a year key (``Y2025`` -> ``M2025-01`` .. ``M2025-12``)."""
    return tuple(f"M{key[1:]}-{month:02d}" for month in range(1, 13))


def whole_years(keys: Sequence[str]) -> tuple[str, ...]:
    """``keys`` with the twelve month keys of any whole year among them replaced by its year key
    (where years are kept, one row stands for twelve); the other keys as they were, in order."""
    months: dict[str, int] = {}
    for key in keys:
        if key[0] == "M":
            months[key[1:5]] = months.get(key[1:5], 0) + 1
    whole = {year for year, n in months.items() if n == 12}
    if not whole:
        return tuple(keys)
    out: list[str] = []
    for key in keys:
        if key[0] != "M" or key[1:5] not in whole:
            out.append(key)
        elif key[6:] == "01":  # the year's first month stands for all twelve
            out.append(f"Y{key[1:5]}")
    return tuple(out)


#: The kinds of period (first letter of the key) kept for every roll-up but the one with all four
#: case categories, and their parts that are: years (their months) and weeks (their days). There,
#: they would add as many cells as the parts they sum, for the reports read least.
_PARTS = {"Y": year_months, "W": week_days}
WITHOUT_FULL = tuple(_PARTS)


def kept_with_all_four(keys: Sequence[str]) -> tuple[str, ...]:
    """``keys`` with each year and week key replaced by its months or days: the keys of the same
    days that the roll-up with all four case categories keeps."""
    out: list[str] = []
    for key in keys:
        parts = _PARTS.get(key[0])
        out += parts(key) if parts else (key,)
    return tuple(out)
