"""Reporting rules: pure, no I/O. What each event adds to which figure.

Figures are counted per province (post-2025 code), day (Asia/Ho_Chi_Minh) and service category;
every period (month, quarter, phase) is a sum of days. Nothing here identifies a woman."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from shared.events import (
    CaseOpened,
    Event,
    FollowUpScheduled,
    MessageSent,
    NeedUnmatched,
    ReferralRequested,
)
from shared.provinces import SCHEME_LEGACY, UnknownProvince, is_province_code, map_legacy_code

VN = ZoneInfo("Asia/Ho_Chi_Minh")
NO_CATEGORY = ""

METRICS = (
    "cases_opened",
    "needs_assessed",
    "referrals_requested",
    "needs_unmatched",
    "messages_scheduled",
    "messages_sent",
    "sms_segments",
)


@dataclass(frozen=True)
class Contribution:
    province: str
    day: date
    category: str
    metric: str
    delta: int


def local_day(at: datetime) -> date:
    """The calendar day in Vietnam of an aware timestamp."""
    return at.astimezone(VN).date()


def _province(code: str, scheme: str = "vn-2025") -> str:
    if scheme == SCHEME_LEGACY:
        return map_legacy_code(code).code
    if not is_province_code(code):
        raise UnknownProvince(f"unknown province {code!r} in the post-2025 list (vn-2025)")
    return code


def contributions(event: Event) -> list[Contribution]:
    """The figures ``event`` adds to; empty for events reporting does not count."""
    match event:
        case CaseOpened():
            p, d = _province(event.province, event.province_scheme), local_day(event.opened_at)
            return [Contribution(p, d, NO_CATEGORY, "cases_opened", 1)] + [
                Contribution(p, d, need.value, "needs_assessed", 1) for need in event.needs
            ]
        case ReferralRequested():
            return [
                Contribution(
                    _province(event.province),
                    local_day(event.requested_at),
                    event.category.value,
                    "referrals_requested",
                    1,
                )
            ]
        case NeedUnmatched():
            return [
                Contribution(
                    _province(event.province), local_day(event.at), event.category.value, "needs_unmatched", 1
                )
            ]
        case FollowUpScheduled():
            return [
                Contribution(
                    _province(event.province), local_day(event.due_at), NO_CATEGORY, "messages_scheduled", 1
                )
            ]
        case MessageSent():
            p, d = _province(event.province), local_day(event.sent_at)
            return [
                Contribution(p, d, NO_CATEGORY, "messages_sent", 1),
                Contribution(p, d, NO_CATEGORY, "sms_segments", event.segments),
            ]
    return []
