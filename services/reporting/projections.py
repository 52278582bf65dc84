"""The reporting projection: pure rules over an abstract state, so that live consumers (state in
the database, loaded on demand) and ``osso reporting rebuild`` (state in memory) run the same code
and must end with the same tables.

- **Keyed, not in clear**: a case, referral, session or message id is replaced by an HMAC-SHA256
  of it under the reporting key (:class:`Hasher`); no projection row holds an id in clear.
- **Idempotent**: every figure an event adds is guarded by a fact key derived from what the event
  says (the session id, the referral id and step, the message id and status...). A fact claimed
  before adds nothing, whatever the event id it came under.
- **Order-free**: a case's categories (opening channel, migration kind, return kind, age band)
  come from its case.opened; a figure for a case not opened yet is counted under ``?`` and
  remembered as pending, and moved to the case's categories when case.opened arrives. Durations
  are counted when both ends of a referral are known, whichever came first.
- **Erasure**: ``case.erased`` changes no figure (reporting holds nothing that identifies her).

A cell is ``(period, province, category, channel, migration_kind, return_kind, age_band, metric)``;
each figure is written to its period keys (see ``periods.py``) twice: with ``*`` in the four case
categories (the roll-up the default report reads) and with the case's categories.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple, Protocol

from services.reporting.domain import (
    DAYS_TO_ACCEPTANCE,
    DAYS_TO_COMPLETION,
    DISTINCT_METRICS,
    FACT_COUNT,
    NO_CATEGORY,
    Contribution,
    contributions,
    local_day,
    province_code,
)
from services.reporting.periods import (
    WITHOUT_FULL,
    Phases,
    additive_keys,
    day_key,
    distinct_keys,
    week_key,
)
from shared.events import (
    ActivityRecorded,
    CaseOpened,
    CaseStatusChanged,
    Event,
    FollowUpScheduled,
    MessageCancelled,
    MessageDelivered,
    MessageFailed,
    MessageSent,
    NeedsAssessed,
    NeedUnmatched,
    OptedOut,
    ReferralAccepted,
    ReferralCancelled,
    ReferralCompleted,
    ReferralEvent,
    ReferralFailed,
    ReferralOverdue,
    ReferralRejected,
    ReferralRequested,
    SessionRecorded,
)

ROLLUP = "*"
PENDING = "?"
UNKNOWN = "unknown"
NOT_A_CASE = "none"  # community activities belong to no woman

Cell = tuple[str, str, str, str, str, str, str, str]
#: A figure before it is spread over its cells (:func:`fan_out`): a cell with the tuple of its
#: period keys in place of one period.
Base = tuple[tuple[str, ...], str, str, str, str, str, str, str]
#: Either: what pending lists hold and moving a case's figures bumps (cells, or bases in a rebuild).
Key = Cell | Base
DIMENSIONS = ("channel", "migration_kind", "return_kind", "age_band")


def fan_out(base: Base) -> list[Cell]:
    """The cells a figure adds to, in each of its periods: every roll-up (no category, each
    category alone, all four); for years and weeks all but all four (``periods.WITHOUT_FULL``).
    Days have each category alone too: a range of days grouped by one would otherwise sum and group
    every day's cells with all four (most of its time)."""
    periods, province, category, channel, migration, return_kind, age, metric = base
    R = ROLLUP
    distinct = metric in DISTINCT_METRICS
    cells: list[Cell] = []
    for period in periods:
        cells.append((period, province, category, R, R, R, R, metric))
        if distinct or period[0] not in WITHOUT_FULL:
            cells.append((period, province, category, channel, migration, return_kind, age, metric))
        cells.append((period, province, category, channel, R, R, R, metric))
        cells.append((period, province, category, R, migration, R, R, metric))
        cells.append((period, province, category, R, R, return_kind, R, metric))
        cells.append((period, province, category, R, R, R, age, metric))
    return cells


class CaseDims(NamedTuple):
    """A case's reporting categories, fixed at case.opened."""

    province: str
    channel: str
    migration_kind: str
    return_kind: str
    age_band: str


class Fact(NamedTuple):
    """What a fact key stands for: enough to count distinct women over any range of days."""

    kind: str
    case_hash: str
    province: str
    day: date
    category: str


#: Kinds of fact a distinct count over any range of days reads: a session (women reached) and a
#: completed referral (women supported).
RANGE_KINDS = ("session", "completed")


def previous_days(facts: Iterable[tuple[str, Fact]]) -> dict[str, tuple[date | None, date | None]]:
    """For each fact of a range kind (the others are left out): the day of the same woman's fact of
    the same kind in the same province just before it, and of the same category too (None: it is
    her first). Facts are ordered by (day, key), so exactly one fact of hers in days ``lo``..``hi``
    has no previous day or one before ``lo``: a distinct count over a range is a plain count."""
    women: dict[tuple[str, str, str], list[tuple[date, str]]] = defaultdict(list)
    categories: dict[tuple[str, str, str, str], list[tuple[date, str]]] = defaultdict(list)
    for key, f in facts:
        if f.kind in RANGE_KINDS:
            women[f.kind, f.province, f.case_hash].append((f.day, key))
            categories[f.kind, f.province, f.case_hash, f.category].append((f.day, key))
    before: dict[str, list[date | None]] = {}
    for n, groups in enumerate((women.values(), categories.values())):
        for group in groups:
            group.sort()
            previous = None
            for day, key in group:
                before.setdefault(key, [None, None])[n] = previous
                previous = day
    return {key: (days[0], days[1]) for key, days in before.items()}


@dataclass(slots=True)  # a third smaller without a __dict__: a rebuild keeps one a referral
class ReferralTimes:
    province: str
    category: str
    case_hash: str
    requested_at: datetime | None = None
    accepted_at: datetime | None = None
    completed_at: datetime | None = None


class State(Protocol):
    """Where the projection keeps its facts and adds to its figures."""

    def claim(self, key: str, fact: Fact) -> bool:
        """Record ``key``; False if it was recorded before (then nothing must be counted)."""

    def case(self, case_hash: str) -> CaseDims | None: ...

    def put_case(self, case_hash: str, dims: CaseDims) -> None: ...

    def referral(self, referral_hash: str) -> ReferralTimes | None: ...

    def put_referral(self, referral_hash: str, times: ReferralTimes) -> None: ...

    def pending(self, case_hash: str) -> Sequence[tuple[Key, int]]:
        """What was added while her case was not known (``?`` in its categories)."""

    def clear_pending(self, case_hash: str) -> None: ...

    def add(self, base: Base, delta: int, pending_case: str | None) -> None:
        """Add ``delta`` to a figure's cells; with ``pending_case``, remember them as hers."""

    def bump(self, key: Key, delta: int) -> None:
        """Add to one of the keys :meth:`pending` gave (or the same with her categories)."""


class Spreads:
    """For a state that keeps cells: :meth:`add` spreads a figure over them (:func:`fan_out`)."""

    def bump_all(self, cells: list[Cell], delta: int) -> None:
        raise NotImplementedError

    def add_pending(self, case_hash: str, cell: Cell, delta: int) -> None:
        raise NotImplementedError

    def add(self, base: Base, delta: int, pending_case: str | None) -> None:
        cells = fan_out(base)
        self.bump_all(cells, delta)
        if pending_case is not None:
            for cell in cells:
                if PENDING in cell[3:7]:
                    self.add_pending(pending_case, cell, delta)


class Hasher:
    """Keyed hash (HMAC-SHA256, 128 bits kept) of ids, so a projection can count distinct women
    without holding a case id: without the key the hash cannot be linked back to the case."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the reporting hash key must have at least 16 bytes")
        self._key = key
        self._cache: dict[str, str] = {}

    def __call__(self, kind: str, value: str) -> str:
        token = f"{kind}:{value}"
        found = self._cache.get(token)
        if found is None:
            found = hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()[:32]
            if len(self._cache) < 1_000_000:
                self._cache[token] = found
        return found

    def __repr__(self) -> str:
        return "Hasher(<key>)"


def days_between(start: datetime, end: datetime) -> int:
    """Whole days (periods of 24 hours) from ``start`` to ``end``, never negative."""
    return max(0, int((end - start).total_seconds() // 86400))


class Projection:
    """Applies events to a :class:`State`."""

    def __init__(self, state: State, hasher: Hasher, phases: Phases) -> None:
        self.state = state
        self.hash = hasher
        self.phases = phases
        self._period_cache: dict[date, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}
        self._days: dict[date, date] = {}
        self._case_hashes: dict[str, str] = {}
        self._dims_for: str | None = None
        self._dims_cached: tuple[tuple[str, str, str, str], bool] = ((PENDING,) * 4, True)  # type: ignore[assignment]

    # -- counting ------------------------------------------------------------------------------
    def _dims(self, case_hash: str | None) -> tuple[tuple[str, str, str, str], bool]:
        """The case's four categories (``?`` until it is opened) and whether they are pending."""
        if case_hash is None:
            return (NOT_A_CASE, NOT_A_CASE, NOT_A_CASE, NOT_A_CASE), False
        if case_hash != self._dims_for:
            dims = self.state.case(case_hash)
            self._dims_for = case_hash
            self._dims_cached = (
                ((PENDING, PENDING, PENDING, PENDING), True)
                if dims is None
                else ((dims.channel, dims.migration_kind, dims.return_kind, dims.age_band), False)
            )
        return self._dims_cached

    def _add(self, periods: tuple[str, ...], case_hash: str | None, c: Contribution) -> None:
        """Add to the cells of ``periods`` (:func:`fan_out`), as pending if her case is not known."""
        (channel, migration, return_kind, age), pending = self._dims(case_hash)
        if c.channel is not None:
            channel = c.channel
        base = (periods, c.province, c.category, channel, migration, return_kind, age, c.metric)
        self.state.add(base, c.delta, case_hash if pending else None)

    def _periods(self, d: date) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """A day's additive, distinct and fact-count period keys (made once a day: a rebuild asks
        for them several times an event)."""
        found = self._period_cache.get(d)
        if found is None:
            found = self._period_cache[d] = (
                additive_keys(d, self.phases),
                distinct_keys(d, self.phases),
                (day_key(d), week_key(d)),
            )
        return found

    def _case_hash(self, case_id: str) -> str:
        """Her case's hash, one string for all her facts: the hasher keeps only so many (a rebuild
        of 1,000,000 cases would otherwise hold a copy in each of most women's 25 facts)."""
        found = self._case_hashes.get(case_id)
        if found is None:
            found = self._case_hashes[case_id] = self.hash("case", case_id)
        return found

    def _day(self, d: date) -> date:
        """One date object a day for the facts to share (a rebuild keeps millions of facts)."""
        return self._days.setdefault(d, d)

    def count(self, case_hash: str | None, c: Contribution) -> None:
        """Add an additive figure to its day, month and phases."""
        if c.delta:
            self._add(self._periods(c.day)[0], case_hash, c)

    def count_fact(self, case_hash: str, c: Contribution) -> None:
        """Count a new range fact on its day and week (``domain.FACT_COUNT``), under its category and
        all."""
        period = self._periods(c.day)[2]
        for category in dict.fromkeys((c.category, NO_CATEGORY)):
            fact = Contribution(c.province, c.day, category, FACT_COUNT + c.metric, c.delta, c.channel)
            self._add(period, case_hash, fact)

    def count_distinct(self, case_hash: str, c: Contribution) -> None:
        """Add 1 to a distinct-women figure in each period where she was not counted yet."""
        fact = Fact("distinct", case_hash, c.province, self._day(c.day), c.category)  # one for all
        for period in self._periods(c.day)[1]:
            key = f"d:{c.metric}:{c.category}:{period}:{c.province}:{case_hash}"
            if self.state.claim(key, fact):
                self._add((period,), case_hash, c)

    # -- events ----------------------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        """Apply one event (any type; the ones reporting does not count change nothing)."""
        self._dims_for = None  # a case's categories may change with this event (case.opened)
        match event:
            case CaseOpened():
                self._case_opened(event)
            case SessionRecorded():
                self._session(event)
            case ReferralEvent():
                self._referral(event)
            case ActivityRecorded():
                self._simple(f"activity:{self.hash('activity', event.activity_id)}", None, event)
            case CaseStatusChanged():
                key = f"status:{event.to_status}:{int(event.reopened)}:{event.at.isoformat()}"
                self._for_case(event.case_id, key, event)
            case NeedsAssessed():
                self._for_case(event.case_id, f"needs:{event.at.isoformat()}", event)
            case NeedUnmatched():
                self._for_case(event.case_id, f"unmatched:{event.category}:{event.at.isoformat()}", event)
            case OptedOut():
                self._for_case(event.case_id, f"optout:{event.channel}:{event.at.isoformat()}", event)
            case (
                FollowUpScheduled()
                | MessageSent()
                | MessageDelivered()
                | MessageFailed()
                | MessageCancelled()
            ):
                key = f"msg:{self.hash('message', event.message_id)}:{event.NAME}"
                self._for_case(event.case_id, key, event)

    def _simple(self, key: str, case_hash: str | None, event: Event) -> None:
        found = contributions(event)
        if not found:
            return
        first = found[0]
        if not self.state.claim(
            key, Fact("event", case_hash or "", first.province, self._day(first.day), first.category)
        ):
            return
        for c in found:
            self.count(case_hash, c)

    def _for_case(self, case_id: str, key: str, event: Event) -> None:
        case_hash = self._case_hash(case_id)
        self._simple(f"{key}:{case_hash}", case_hash, event)

    def _case_opened(self, event: CaseOpened) -> None:
        case_hash = self._case_hash(event.case_id)
        province = province_code(event.province, event.province_scheme)
        if not self.state.claim(
            f"open:{case_hash}",
            Fact("opened", case_hash, province, self._day(local_day(event.opened_at)), NO_CATEGORY),
        ):
            return
        profile = event.profile
        dims = CaseDims(
            province,
            event.channel.value,
            profile.migration_kind.value if profile and profile.migration_kind else UNKNOWN,
            profile.return_kind.value if profile and profile.return_kind else UNKNOWN,
            profile.age_band.value if profile else UNKNOWN,
        )
        # Figures counted before her case was known move to her categories.
        for cell, delta in self.state.pending(case_hash):
            self.state.bump(cell, -delta)
            moved = (
                *cell[:3],
                *(new if old == PENDING else old for old, new in zip(cell[3:7], dims[1:], strict=True)),
                cell[7],
            )
            self.state.bump(moved, delta)  # type: ignore[arg-type]
        self.state.clear_pending(case_hash)
        self.state.put_case(case_hash, dims)
        self._dims_for = None
        for c in contributions(event):
            self.count(case_hash, c)

    def _session(self, event: SessionRecorded) -> None:
        case_hash = self._case_hash(event.case_id)
        found = contributions(event)
        first = found[0]
        if not self.state.claim(
            f"session:{self.hash('session', event.session_id)}",
            Fact("session", case_hash, first.province, self._day(first.day), NO_CATEGORY),
        ):
            return
        for c in found:
            self.count(case_hash, c)
        reached = Contribution(first.province, first.day, NO_CATEGORY, "women_reached", 1)
        self.count_fact(case_hash, reached)
        self.count_distinct(case_hash, reached)

    def _referral(self, event: ReferralEvent) -> None:
        step = event.NAME + (f":{event.stage}" if isinstance(event, ReferralOverdue) else "")
        if not isinstance(
            event,
            ReferralRequested
            | ReferralAccepted
            | ReferralRejected
            | ReferralCompleted
            | ReferralFailed
            | ReferralCancelled
            | ReferralOverdue,
        ):
            return  # started, on hold, resumed, notes: no figure
        case_hash = self._case_hash(event.case_id)
        referral_hash = self.hash("referral", event.referral_id)
        found = contributions(event)
        c = found[0]
        kind = "completed" if isinstance(event, ReferralCompleted) else "referral"
        if not self.state.claim(
            f"ref:{referral_hash}:{step}", Fact(kind, case_hash, c.province, self._day(c.day), c.category)
        ):
            return
        self.count(case_hash, c)
        times = self.state.referral(referral_hash) or ReferralTimes(c.province, c.category, case_hash)
        if isinstance(event, ReferralRequested):
            times.requested_at = event.requested_at
            if times.accepted_at:
                self._duration(case_hash, times, DAYS_TO_ACCEPTANCE, times.accepted_at)
            if times.completed_at:
                self._duration(case_hash, times, DAYS_TO_COMPLETION, times.completed_at)
        elif isinstance(event, ReferralAccepted):
            times.accepted_at = event.at
            if times.requested_at:
                self._duration(case_hash, times, DAYS_TO_ACCEPTANCE, event.at)
        elif isinstance(event, ReferralCompleted):
            times.completed_at = event.at
            if times.requested_at:
                self._duration(case_hash, times, DAYS_TO_COMPLETION, event.at)
            support = Contribution(c.province, c.day, c.category, "women_supported", 1)
            self.count_fact(case_hash, support)
            self.count_distinct(case_hash, support)
            self.count_distinct(case_hash, Contribution(c.province, c.day, NO_CATEGORY, "women_supported", 1))
        else:
            return
        self.state.put_referral(referral_hash, times)

    def _duration(self, case_hash: str, times: ReferralTimes, prefix: str, end: datetime) -> None:
        assert times.requested_at is not None
        days = days_between(times.requested_at, end)
        self.count(
            case_hash, Contribution(times.province, local_day(end), times.category, f"{prefix}{days}", 1)
        )


@dataclass
class MemoryState(Spreads):
    """The whole projection in memory: used by ``rebuild`` and by unit tests."""

    facts: dict[str, Fact] = field(default_factory=dict)
    cases: dict[str, CaseDims] = field(default_factory=dict)
    referrals: dict[str, ReferralTimes] = field(default_factory=dict)
    pendings: defaultdict[str, Counter[Cell]] = field(default_factory=lambda: defaultdict(Counter))
    cube: Counter[Cell] = field(default_factory=Counter)

    def claim(self, key: str, fact: Fact) -> bool:
        if key in self.facts:
            return False
        self.facts[key] = fact
        return True

    def case(self, case_hash: str) -> CaseDims | None:
        return self.cases.get(case_hash)

    def put_case(self, case_hash: str, dims: CaseDims) -> None:
        self.cases[case_hash] = dims

    def referral(self, referral_hash: str) -> ReferralTimes | None:
        return self.referrals.get(referral_hash)

    def put_referral(self, referral_hash: str, times: ReferralTimes) -> None:
        self.referrals[referral_hash] = times

    def pending(self, case_hash: str) -> list[tuple[Key, int]]:
        found = self.pendings.get(case_hash)
        return list(found.items()) if found else []

    def add_pending(self, case_hash: str, cell: Cell, delta: int) -> None:
        self.pendings[case_hash][cell] += delta

    def clear_pending(self, case_hash: str) -> None:
        self.pendings.pop(case_hash, None)

    def bump(self, key: Key, delta: int) -> None:
        self.cube[key] += delta  # type: ignore[index]

    def bump_all(self, cells: list[Cell], delta: int) -> None:
        cube = self.cube
        if delta == 1:
            # Counter.update counts in C and hashes each cell once (most figures add 1).
            cube.update(cells)
            return
        for cell in cells:
            cube[cell] += delta

    def pending_cells(self) -> Iterable[tuple[str, Cell, int]]:
        """(case hash, cell, delta) of what is pending."""
        for case_hash, cells in self.pendings.items():
            for cell, delta in cells.items():
                yield case_hash, cell, delta

    def figures(self) -> dict[Cell, int]:
        """The cube without empty cells (what the tables hold)."""
        return {cell: value for cell, value in self.cube.items() if value}
