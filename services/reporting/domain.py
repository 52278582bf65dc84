"""Reporting rules: pure, no I/O. What each event adds to which additive figure, in which province
(post-2025 code) and on which day (Asia/Ho_Chi_Minh). Distinct counts, durations and the keyed
facts that make a projection idempotent are in ``projections.py``. Nothing here identifies a woman."""

from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

import numpy as np

from shared.events import (
    ActivityKind,
    ActivityRecorded,
    CaseOpened,
    CaseStatus,
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
    ReferralFailed,
    ReferralOverdue,
    ReferralRejected,
    ReferralRequested,
    SessionRecorded,
)
from shared.provinces import SCHEME_LEGACY, UnknownProvince, is_province_code, map_legacy_code

VN = ZoneInfo("Asia/Ho_Chi_Minh")
NO_CATEGORY = ""

#: Figures that add up over days, provinces and categories.
ADDITIVE_METRICS = (
    "cases_opened",
    "cases_closed",
    "cases_reopened",
    "needs_assessed",
    "sessions",
    "session_topics",
    "referrals_requested",
    "referrals_accepted",
    "referrals_rejected",
    "referrals_completed",
    "referrals_failed",
    "referrals_cancelled",
    "referrals_overdue",
    "needs_unmatched",
    "messages_scheduled",
    "messages_sent",
    "sms_segments",
    "messages_delivered",
    "messages_failed",
    "messages_cancelled",
    "opted_out",
    "outreach_sessions",
    "outreach_participants",
    "trainings",
    "training_participants",
    "officials_trained",
)
#: Distinct women: counted once per period, province (and category), whatever the number of events.
DISTINCT_METRICS = ("women_reached", "women_supported")
#: Per day only: how many range facts (a session; a completed referral, per category and in all)
#: were counted, under ``f:`` and the distinct figure's name. Women over a range of days that is no
#: kept period = her facts in it (these, summed over its days) - her facts in it whose previous one
#: is in it too (few, read from the facts): see ``reads.distinct_rows``.
FACT_COUNT = "f:"
FACT_COUNTS = tuple(FACT_COUNT + metric for metric in DISTINCT_METRICS)
#: Histograms of whole days (24 h) from request to acceptance / completion, one metric per value.
DAYS_TO_ACCEPTANCE = "d2a:"
DAYS_TO_COMPLETION = "d2c:"
HISTOGRAMS = (DAYS_TO_ACCEPTANCE, DAYS_TO_COMPLETION)  # prefixes of equal length
PREFIX_LENGTH = len(DAYS_TO_ACCEPTANCE)
METRICS = ADDITIVE_METRICS + DISTINCT_METRICS
#: Computed when a report is read, from the figures above.
DERIVED_METRICS = ("completion_rate", "median_days_to_acceptance", "median_days_to_completion")


class Contribution(NamedTuple):
    """What one event adds to one figure (a tuple: a rebuild makes several an event)."""

    province: str
    day: date
    category: str
    metric: str
    delta: int
    #: The channel of this fact itself (a session's channel); None means the case's channel.
    channel: str | None = None


def local_day(at: datetime) -> date:
    """The calendar day in Vietnam of an aware timestamp."""
    return at.astimezone(VN).date()


def province_code(code: str, scheme: str | None = None) -> str:
    """The post-2025 code of an event's province. A case.opened says its scheme and is read in it;
    other events carry no scheme, so a code that is not on the post-2025 list is read as pre-2025
    (codes reused across the lists map to the same province, so this is never ambiguous)."""
    if scheme == SCHEME_LEGACY:
        return map_legacy_code(code).code
    if is_province_code(code):
        return code
    if scheme is None:
        return map_legacy_code(code).code
    raise UnknownProvince(f"unknown province {code!r} in the post-2025 list (vn-2025)")


_province = province_code  # the walking skeleton's name


def _one(province: str, at: datetime, category: str, metric: str) -> list[Contribution]:
    return [Contribution(province_code(province), local_day(at), category, metric, 1)]


_REFERRAL_METRIC = {
    ReferralAccepted: "referrals_accepted",
    ReferralRejected: "referrals_rejected",
    ReferralCompleted: "referrals_completed",
    ReferralFailed: "referrals_failed",
    ReferralCancelled: "referrals_cancelled",
    ReferralOverdue: "referrals_overdue",
}
_MESSAGE_METRIC = {
    MessageDelivered: "messages_delivered",
    MessageFailed: "messages_failed",
    MessageCancelled: "messages_cancelled",
}


def contributions(event: Event) -> list[Contribution]:
    """The additive figures ``event`` adds to; empty for events reporting does not count."""
    match event:
        case CaseOpened():
            p, d = province_code(event.province, event.province_scheme), local_day(event.opened_at)
            return [Contribution(p, d, NO_CATEGORY, "cases_opened", 1)] + [
                Contribution(p, d, need.value, "needs_assessed", 1) for need in event.needs
            ]
        case CaseStatusChanged():
            if event.to_status is CaseStatus.CLOSED:
                return _one(event.province, event.at, NO_CATEGORY, "cases_closed")
            if event.reopened:
                return _one(event.province, event.at, NO_CATEGORY, "cases_reopened")
            return []
        case NeedsAssessed():
            p, d = province_code(event.province), local_day(event.at)
            return [Contribution(p, d, need.category.value, "needs_assessed", 1) for need in event.needs]
        case SessionRecorded():
            p, d = province_code(event.province), event.held_on
            return [Contribution(p, d, NO_CATEGORY, "sessions", 1, channel=event.channel.value)] + [
                Contribution(p, d, topic.value, "session_topics", 1, channel=event.channel.value)
                for topic in dict.fromkeys(event.topics)
            ]
        case ActivityRecorded():
            p, d = province_code(event.province), event.held_on
            everyone = sum(group.count for group in event.participants)
            if event.kind is ActivityKind.OUTREACH:
                return [
                    Contribution(p, d, NO_CATEGORY, "outreach_sessions", 1),
                    Contribution(p, d, NO_CATEGORY, "outreach_participants", everyone),
                ]
            officials = sum(group.count for group in event.participants if group.role == "official")
            return [
                Contribution(p, d, NO_CATEGORY, "trainings", 1),
                Contribution(p, d, NO_CATEGORY, "training_participants", everyone),
                Contribution(p, d, NO_CATEGORY, "officials_trained", officials),
            ]
        case ReferralRequested():
            return _one(event.province, event.requested_at, event.category.value, "referrals_requested")
        case (
            ReferralAccepted()
            | ReferralRejected()
            | ReferralCompleted()
            | ReferralFailed()
            | ReferralCancelled()
            | ReferralOverdue()
        ):
            metric = _REFERRAL_METRIC[type(event)]
            return _one(event.province, event.at, event.category.value, metric)
        case NeedUnmatched():
            return _one(event.province, event.at, event.category.value, "needs_unmatched")
        case FollowUpScheduled():
            return _one(event.province, event.due_at, NO_CATEGORY, "messages_scheduled")
        case MessageSent():
            p, d = province_code(event.province), local_day(event.sent_at)
            return [
                Contribution(p, d, NO_CATEGORY, "messages_sent", 1),
                Contribution(p, d, NO_CATEGORY, "sms_segments", event.segments),
            ]
        case MessageDelivered() | MessageFailed() | MessageCancelled():
            return _one(event.province, event.at, NO_CATEGORY, _MESSAGE_METRIC[type(event)])
        case OptedOut():
            return _one(event.province, event.at, NO_CATEGORY, "opted_out")
    return []


def histogram_of(metric: str) -> tuple[str, int] | None:
    """``("d2a:", 12)`` for the histogram metric ``d2a:12``; None for any other metric."""
    prefix = metric[:PREFIX_LENGTH]
    if prefix in HISTOGRAMS and len(metric) > PREFIX_LENGTH:
        return prefix, int(metric[PREFIX_LENGTH:])
    return None


def parse_pairs(pairs: str | None) -> dict[int, int]:
    """A histogram's ``days count`` pairs joined by commas, a day perhaps more than once (added by
    several writes, some counts negative when figures moved) -> days -> count, no zero count.
    Empty items (a row an older compaction left as ``""``) are skipped. Parsed and summed in C
    (numpy): a report over a million distinct cases merges hundreds of thousands of pairs."""
    if not pairs:
        return {}
    numbers = np.fromstring(pairs.replace(",", " "), dtype=np.int64, sep=" ")
    if numbers.size % 2:
        raise ValueError(f"a histogram's pairs end halfway: {pairs[-40:]!r}")
    # Whole numbers summed as float64: exact below 2**53 referrals.
    totals = np.bincount(numbers[0::2], weights=numbers[1::2])
    days = np.flatnonzero(totals)
    return dict(zip(days.tolist(), np.rint(totals[days]).astype(np.int64).tolist(), strict=True))


def join_pairs(histogram: dict[int, int]) -> str:
    """days -> count as ``days count`` pairs joined by commas, in order of days, no zero count."""
    return ",".join(f"{days} {count}" for days, count in sorted(histogram.items()) if count)
