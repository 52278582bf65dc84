"""A generated history of cases across the five pilot provinces over two years (with cases opened
under old province codes before 1 July 2025), the events it produces, and the figures expected
from it, computed here from the generated records, not by the reporting code.

Also the projection's unit tests on that history: in memory, any order, duplicates."""

from __future__ import annotations

import functools
import random
import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from services.reporting.api import run_report
from services.reporting.periods import Phases
from services.reporting.projections import Hasher, MemoryState, Projection
from services.reporting.queries import render
from services.reporting.reads import CubeQuery
from services.reporting.store import LIVE, metadata, write_memory_state
from shared.events import (
    ActivityKind,
    ActivityRecorded,
    AgeBand,
    CaseErased,
    CaseOpened,
    CaseProfile,
    CaseStatus,
    CaseStatusChanged,
    ConsentSnapshot,
    Event,
    FollowUpScheduled,
    MessageDelivered,
    MessageFailed,
    MessageSent,
    MigrationKind,
    NeedUnmatched,
    OptedOut,
    Participants,
    ReferralAccepted,
    ReferralCancelled,
    ReferralCompleted,
    ReferralFailed,
    ReferralOverdue,
    ReferralRejected,
    ReferralRequested,
    ReturnKind,
    SessionRecorded,
)
from shared.events import ContactChannel as SmsChannel
from shared.vocab import Channel, ServiceCategory

VN = ZoneInfo("Asia/Ho_Chi_Minh")
START = datetime(2024, 7, 1, tzinfo=VN)
END = datetime(2026, 6, 30, 23, 0, tzinfo=VN)
REFORM = datetime(2025, 7, 1, tzinfo=VN)
PHASES = {"phase-1": (date(2024, 7, 1), date(2025, 6, 30)), "phase-2": (date(2025, 7, 1), date(2026, 6, 30))}
#: (code used before the reform, scheme, post-2025 code)
PILOT = [("01", "01"), ("31", "31"), ("30", "31"), ("92", "92"), ("93", "92")]
CATEGORIES = list(ServiceCategory)


def vn_day(at: datetime) -> date:
    return at.astimezone(VN).date()


@dataclass
class CaseRecord:
    case_id: str
    province: str  # post-2025
    channel: str
    migration: str
    return_kind: str
    age_band: str
    opened_at: datetime
    sessions: list[tuple[date, str]] = field(default_factory=list)  # (held_on, channel)
    # (referral id, category, requested_at, accepted_at, completed_at, rejected_at, cancelled_at, failed_at, overdue_at)
    referrals: list[dict] = field(default_factory=list)
    unmatched: list[tuple[str, datetime]] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)
    opted_out: list[datetime] = field(default_factory=list)
    closed_at: datetime | None = None


@dataclass
class History:
    cases: list[CaseRecord]
    activities: list[dict]
    events: list[Event]
    erasures: list[Event]


def _code_at(case_code: str, new_code: str, at: datetime) -> str:
    return case_code if at < REFORM else new_code


def generate(n_cases: int, seed: int = 7) -> History:
    rng = random.Random(seed)
    span = (END - START).total_seconds()

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128)))

    cases: list[CaseRecord] = []
    events: list[Event] = []
    for _ in range(n_cases):
        old_code, new_code = rng.choice(PILOT)
        opened_at = (START + timedelta(seconds=rng.random() * span * 0.95)).astimezone(UTC)
        legacy = opened_at < REFORM
        profile = None
        if rng.random() < 0.9:
            profile = CaseProfile(
                migration_kind=rng.choice([None, *MigrationKind]),
                return_kind=rng.choice([None, *ReturnKind]),
                age_band=rng.choice(list(AgeBand)),
            )
        channel = rng.choice(list(Channel))
        needs = rng.sample(CATEGORIES, rng.randint(1, 3))
        case = CaseRecord(
            uid(),
            new_code,
            channel.value,
            profile.migration_kind.value if profile and profile.migration_kind else "unknown",
            profile.return_kind.value if profile and profile.return_kind else "unknown",
            profile.age_band.value if profile else "unknown",
            opened_at,
        )
        cases.append(case)
        events.append(
            CaseOpened(
                case_id=case.case_id,
                province=old_code if legacy else new_code,
                province_scheme="vn-legacy" if legacy else "vn-2025",
                channel=channel,
                needs=needs,
                consent=ConsentSnapshot(referral=True, sms=True),
                opened_at=opened_at,
                profile=profile,
            )
        )

        def code(at: datetime, old: str = old_code, new: str = new_code) -> str:
            return _code_at(old, new, at)

        for _s in range(rng.choice([0, 1, 1, 2, 3, 4])):
            at = opened_at + timedelta(days=rng.randint(0, 90), hours=rng.randint(0, 10))
            if at > END:
                continue
            ch = rng.choice(list(Channel))
            case.sessions.append((vn_day(at), ch.value))
            events.append(
                SessionRecorded(
                    case_id=case.case_id,
                    province=code(at),
                    session_id=uid(),
                    channel=ch,
                    topics=rng.sample(CATEGORIES, rng.randint(1, 2)),
                    duration_minutes=rng.randint(15, 90),
                    held_on=vn_day(at),
                    at=at,
                )
            )
        for category in needs:
            at = opened_at + timedelta(minutes=rng.randint(1, 600))
            if rng.random() < 0.08:
                case.unmatched.append((category.value, at))
                events.append(
                    NeedUnmatched(
                        case_id=case.case_id, province=code(at), category=category, reason="no_partner", at=at
                    )
                )
                continue
            rid, partner = uid(), f"p-{new_code}-{category.value}"
            ref = {"id": rid, "category": category.value, "requested_at": at}
            case.referrals.append(ref)
            common = {
                "referral_id": rid,
                "case_id": case.case_id,
                "partner_id": partner,
                "category": category,
            }
            events.append(ReferralRequested(**common, province=code(at), requested_at=at))
            roll = rng.random()
            t = at + timedelta(hours=rng.randint(1, 24 * 12))
            if roll < 0.12:
                ref["rejected_at"] = t
                events.append(ReferralRejected(**common, province=code(t), at=t, reason="no_capacity"))
                continue
            if roll < 0.17:
                ref["overdue_at"] = t
                events.append(ReferralOverdue(**common, province=code(t), at=t, stage="acceptance"))
                t = t + timedelta(hours=rng.randint(1, 48))
                ref["cancelled_at"] = t
                events.append(ReferralCancelled(**common, province=code(t), at=t, reason="expired"))
                continue
            ref["accepted_at"] = t
            events.append(ReferralAccepted(**common, province=code(t), at=t))
            t2 = t + timedelta(hours=rng.randint(2, 24 * 40))
            outcome = rng.random()
            if outcome < 0.7:
                ref["completed_at"] = t2
                events.append(
                    ReferralCompleted(**common, province=code(t2), at=t2, outcome="service_provided")
                )
            elif outcome < 0.8:
                ref["failed_at"] = t2
                events.append(ReferralFailed(**common, province=code(t2), at=t2, reason="unreachable"))
            elif outcome < 0.9:
                ref["cancelled_at"] = t2
                events.append(ReferralCancelled(**common, province=code(t2), at=t2, reason="withdrawn"))
            # else: still open
            if rng.random() < 0.5:
                mid, due = uid(), at + timedelta(hours=2)
                msg = {"id": mid, "due": due, "segments": rng.randint(1, 3)}
                case.messages.append(msg)
                base = {"message_id": mid, "case_id": case.case_id}
                events.append(
                    FollowUpScheduled(**base, province=code(due), template="referral_checkin", due_at=due)
                )
                sent = due + timedelta(minutes=5)
                msg["sent_at"] = sent
                events.append(
                    MessageSent(**base, province=code(sent), segments=msg["segments"], sent_at=sent)
                )
                done = sent + timedelta(minutes=1)
                if rng.random() < 0.85:
                    msg["delivered_at"] = done
                    events.append(MessageDelivered(**base, province=code(done), at=done))
                else:
                    msg["failed_at"] = done
                    events.append(MessageFailed(**base, province=code(done), at=done, reason="unreachable"))
        if case.messages and rng.random() < 0.1:
            at = case.messages[0]["sent_at"] + timedelta(hours=3)
            case.opted_out.append(at)
            events.append(OptedOut(case_id=case.case_id, province=code(at), channel=SmsChannel.SMS, at=at))
        if rng.random() < 0.3:
            at = opened_at + timedelta(days=rng.randint(30, 200))
            if at < END:
                case.closed_at = at
                events.append(
                    CaseStatusChanged(
                        case_id=case.case_id, province=code(at), from_status=CaseStatus.ACTIVE,
                        to_status=CaseStatus.CLOSED, reason="goals_met", at=at,
                    )
                )  # fmt: skip

    activities = []
    month = date(2024, 7, 1)
    while month <= date(2026, 6, 1):
        for old_code, new_code in PILOT:
            held = month + timedelta(days=rng.randint(0, 27))
            when = datetime(held.year, held.month, held.day, 9, tzinfo=VN)
            kind = ActivityKind.OUTREACH if rng.random() < 0.7 else ActivityKind.TRAINING
            people = [
                Participants(sex="female", role="community_member", count=rng.randint(10, 120)),
                Participants(sex="male", role="official", count=rng.randint(0, 30)),
            ]
            activities.append({"province": new_code, "day": held, "kind": kind.value, "participants": people})
            events.append(
                ActivityRecorded(
                    activity_id=uid(), province=_code_at(old_code, new_code, when), kind=kind,
                    held_on=held, participants=people, at=when,
                )
            )  # fmt: skip
        month = (month + timedelta(days=32)).replace(day=1)

    erasures: list[Event] = [
        CaseErased(case_id=c.case_id, province=c.province, at=END)
        for c in rng.sample(cases, max(1, len(cases) // 50))
    ]
    return History(cases, activities, events, erasures)


def expected(
    h: History,
    start: date,
    end: date,
    provinces: set[str] | None = None,
    case_filter: Callable[[CaseRecord], bool] | None = None,
) -> dict[str, float | int | None]:
    """The figures for days ``start``..``end`` (Vietnam) and ``provinces`` (all if None), computed
    from the generated records. Distinct women are counted per province, as the reports say."""

    def inside(at: datetime | date, province: str) -> bool:
        d = at if isinstance(at, date) and not isinstance(at, datetime) else vn_day(at)  # type: ignore[arg-type]
        return start <= d <= end and (provinces is None or province in provinces)

    f: Counter[str] = Counter()
    reached: set[tuple[str, str]] = set()
    supported: dict[str, set[tuple[str, str]]] = defaultdict(set)
    to_accept: list[int] = []
    to_complete: list[int] = []
    for c in h.cases:
        p = c.province
        if case_filter is not None and not case_filter(c):
            continue
        if inside(c.opened_at, p):
            f["cases_opened"] += 1
        if c.closed_at and inside(c.closed_at, p):
            f["cases_closed"] += 1
        for held, _channel in c.sessions:
            if inside(held, p):
                f["sessions"] += 1
                reached.add((p, c.case_id))
        for _category, at in c.unmatched:
            if inside(at, p):
                f["needs_unmatched"] += 1
        for r in c.referrals:
            for step, metric in (
                ("requested_at", "referrals_requested"),
                ("accepted_at", "referrals_accepted"),
                ("rejected_at", "referrals_rejected"),
                ("completed_at", "referrals_completed"),
                ("failed_at", "referrals_failed"),
                ("cancelled_at", "referrals_cancelled"),
                ("overdue_at", "referrals_overdue"),
            ):
                if step in r and inside(r[step], p):
                    f[metric] += 1
            if "accepted_at" in r and inside(r["accepted_at"], p):
                to_accept.append(int((r["accepted_at"] - r["requested_at"]).total_seconds() // 86400))
            if "completed_at" in r and inside(r["completed_at"], p):
                to_complete.append(int((r["completed_at"] - r["requested_at"]).total_seconds() // 86400))
                supported[r["category"]].add((p, c.case_id))
                supported[""].add((p, c.case_id))
        for m in c.messages:
            if inside(m["due"], p):
                f["messages_scheduled"] += 1
            if inside(m["sent_at"], p):
                f["messages_sent"] += 1
                f["sms_segments"] += m["segments"]
            if "delivered_at" in m and inside(m["delivered_at"], p):
                f["messages_delivered"] += 1
            if "failed_at" in m and inside(m["failed_at"], p):
                f["messages_failed"] += 1
        for at in c.opted_out:
            if inside(at, p):
                f["opted_out"] += 1
    for a in h.activities:
        if case_filter is not None or not inside(a["day"], a["province"]):
            continue
        everyone = sum(x.count for x in a["participants"])
        if a["kind"] == "outreach":
            f["outreach_sessions"] += 1
            f["outreach_participants"] += everyone
        else:
            f["trainings"] += 1
            f["training_participants"] += everyone
            f["officials_trained"] += sum(x.count for x in a["participants"] if x.role == "official")
    out: dict[str, float | int | None] = dict(f)
    out["women_reached"] = len(reached)
    out["women_supported"] = len(supported[""])
    for category in CATEGORIES:
        out[f"women_supported/{category.value}"] = len(supported[category.value])
    out["completion_rate"] = (
        round(f["referrals_completed"] / f["referrals_requested"], 3) if f["referrals_requested"] else None
    )
    # Whole days (24 h) from request to acceptance / completion, the median of those.
    out["median_days_to_acceptance"] = float(statistics.median(to_accept)) if to_accept else None
    out["median_days_to_completion"] = float(statistics.median(to_complete)) if to_complete else None
    return out


# -- unit tests of the projection on the generated history ------------------------------------------

#: The reporting hash key of these tests (``ReportingSettings.hash_key``), and its hasher.
HASHER_KEY = "test-reporting-key-0123456789"
HASHER = Hasher(HASHER_KEY.encode())


def project(events: list[Event]) -> MemoryState:
    state = MemoryState()
    projection = Projection(state, HASHER, Phases.of(PHASES))
    for event in events:
        projection.apply(event)
    return state


def tables_of(state: MemoryState) -> Engine:
    """The projection written to an in-memory SQLite database, read by the report queries."""
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as conn:
        write_memory_state(conn, LIVE, state)
    return engine


def _flat(block: dict) -> dict[str, float | int | None]:
    out = dict(block["totals"])
    for cat, figures in block["by_category"].items():
        out[f"women_supported/{cat}"] = figures["women_supported"]
    return out


def figures_from(
    engine: Engine, start: date | None, end: date | None, provinces: set[str] | None = None
) -> dict[str, float | int | None]:
    q = CubeQuery.over(start, end, Phases.of(PHASES), tuple(sorted(provinces or ())))
    with Session(engine) as session:
        return _flat(render(run_report(session, q)))


def grouped_from(
    engine: Engine, start: date | None, end: date | None, group_by: tuple[str, ...]
) -> dict[tuple[str, ...], dict[str, float | int | None]]:
    q = CubeQuery.over(start, end, Phases.of(PHASES), (), group_by)
    with Session(engine) as session:
        rendered = render(run_report(session, q))
    return {tuple(row["group"][g] for g in group_by): _flat(row) for row in rendered["rows"]}


def assert_matches(actual: dict, wanted: dict) -> None:
    mismatched = {k: (actual.get(k, 0), v) for k, v in wanted.items() if (actual.get(k) or 0) != (v or 0)}
    assert not mismatched, f"(actual, expected): {mismatched}"


HISTORY = generate(400, seed=11)


def test_history_spans_the_reform_with_old_codes() -> None:
    opened = [e for e in HISTORY.events if isinstance(e, CaseOpened)]
    assert {e.province for e in opened if e.province_scheme == "vn-legacy"} >= {"30", "93"}
    assert any(e.opened_at >= REFORM for e in opened)


CHECKS = [
    (None, None, None),  # all time
    (*PHASES["phase-1"], None),
    (*PHASES["phase-2"], {"31"}),
    (date(2025, 1, 1), date(2025, 12, 31), {"92"}),  # a year across the reform
    (date(2025, 7, 1), date(2025, 9, 30), {"01", "31"}),
    (date(2025, 6, 1), date(2025, 6, 30), None),
    (date(2025, 6, 15), date(2025, 7, 14), {"31", "92"}),  # no pre-aggregated period: days + facts
    (date(2024, 11, 2), date(2024, 11, 2), None),  # one day
]


@functools.cache
def history_tables() -> Engine:
    return tables_of(project(HISTORY.events))


def test_projection_gives_the_expected_figures_per_period_and_province() -> None:
    for start, end, provinces in CHECKS:
        wanted = expected(HISTORY, start or date(1900, 1, 1), end or date(9999, 1, 1), provinces)
        assert_matches(figures_from(history_tables(), start, end, provinces), wanted)


ATTRIBUTE = {"migration_kind": "migration", "return_kind": "return_kind", "age_band": "age_band"}


@pytest.mark.parametrize(
    ("start", "end", "group_by"),
    [
        (date(2025, 7, 1), date(2025, 9, 30), ("age_band",)),  # one category: its own roll-up
        (*PHASES["phase-1"], ("province", "migration_kind")),
        (date(2025, 1, 1), date(2025, 12, 31), ("province", "return_kind", "age_band")),  # all four
        (date(2025, 6, 20), date(2025, 7, 9), ("age_band",)),  # days and facts
        (date(2025, 6, 20), date(2025, 7, 9), ("province",)),  # facts without her categories
    ],
)
def test_grouped_figures_match_per_group(start: date, end: date, group_by: tuple[str, ...]) -> None:
    groups = grouped_from(history_tables(), start, end, group_by)
    assert groups
    for key, actual in groups.items():
        values = dict(zip(group_by, key, strict=True))
        if "none" in key:  # community activities, not a case
            continue

        def of_group(c: CaseRecord, values: dict[str, str] = values) -> bool:
            return all(getattr(c, ATTRIBUTE[g]) == v for g, v in values.items() if g != "province")

        province = {values["province"]} if "province" in values else None
        assert_matches(actual, expected(HISTORY, start, end, province, of_group))


@pytest.mark.parametrize(
    ("start", "end", "group_by"),
    [
        (None, None, ("province",)),
        (date(2025, 7, 1), date(2025, 9, 30), ("age_band",)),  # months summed
        (date(2025, 1, 1), date(2025, 12, 31), ("province", "return_kind")),  # a year's own cells
        (date(2025, 1, 1), date(2025, 12, 31), ("province", "return_kind", "age_band")),  # its months
        (date(2025, 6, 20), date(2025, 7, 9), ("channel",)),  # days and facts
        # Days and facts: distinct women summed over the groups (each of her facts holds her case's
        # categories), never read again for the total.
        (date(2025, 6, 20), date(2025, 7, 9), ("age_band",)),
        (date(2025, 6, 20), date(2025, 7, 9), ("province",)),
        (date(2024, 11, 3), date(2025, 8, 17), ("province", "migration_kind", "return_kind")),
    ],
)
def test_a_grouped_report_has_the_totals_of_the_same_report_ungrouped(
    start: date | None, end: date | None, group_by: tuple[str, ...]
) -> None:
    """The totals of a grouped report are its groups added up, but for distinct women (read for
    the total itself): the same as the report without groups, histograms and medians included."""
    q = CubeQuery.over(start, end, Phases.of(PHASES), (), group_by)
    with Session(history_tables()) as session:
        grouped = render(run_report(session, q))
        alone = render(run_report(session, CubeQuery.over(start, end, Phases.of(PHASES))))
    assert len(grouped["rows"]) > 1
    assert grouped["totals"]["median_days_to_completion"] is not None
    assert grouped["totals"] == alone["totals"]
    assert grouped["by_category"] == alone["by_category"]


def test_order_and_duplicates_do_not_change_a_figure() -> None:
    in_order = project(HISTORY.events).figures()
    shuffled = list(HISTORY.events)
    random.Random(3).shuffle(shuffled)
    again = shuffled + random.Random(4).sample(shuffled, len(shuffled) // 3)
    assert project(again).figures() == in_order
    # Referral and message events before any case was opened: counted under "?", then moved.
    late_cases = sorted(HISTORY.events, key=lambda e: isinstance(e, CaseOpened))
    assert project(late_cases).figures() == in_order


def test_pending_figures_are_moved_to_the_case_categories() -> None:
    state = MemoryState()
    projection = Projection(state, HASHER, Phases.of(PHASES))
    case = HISTORY.cases[0]
    mine = [e for e in HISTORY.events if getattr(e, "case_id", None) == case.case_id]
    opened = [e for e in mine if isinstance(e, CaseOpened)]
    for event in [e for e in mine if not isinstance(e, CaseOpened)]:
        projection.apply(event)
    assert state.pendings or not mine[1:]
    for event in opened:
        projection.apply(event)
    assert not state.pendings
    assert not any("?" in cell for cell, value in state.figures().items())


def test_erasure_changes_no_figure() -> None:
    before = project(HISTORY.events).figures()
    assert project(HISTORY.events + HISTORY.erasures).figures() == before


def test_no_case_id_in_clear_in_the_projection() -> None:
    state = project(HISTORY.events)
    text = repr(state.figures()) + repr(state.facts) + repr(state.cases) + repr(state.referrals)
    assert not any(c.case_id in text for c in HISTORY.cases[:50])
