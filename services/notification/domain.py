"""Notification rules: pure, no I/O. What is scheduled when, and what a message says."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.events import Event, FollowUpScheduled, ReferralRequested

#: Discreet texts: safe to read over her shoulder, nothing about what the office does.
TEMPLATES: dict[str, dict[str, str]] = {
    "referral_checkin": {
        "vi": "Chào chị, yêu cầu của chị đã được ghi nhận. Chúng tôi sẽ liên hệ lại trong vài ngày tới.",
        "en": "Hello, your request has been received. We will contact you again in the next few days.",
    },
}


class CaseNotKnownYet(RuntimeError):
    """A referral arrived before the case it belongs to; retried until the case event is in."""


@dataclass(frozen=True)
class ContactProfile:
    case_id: str
    province: str
    sms_consent: bool
    language: str = "vi"


@dataclass
class FollowUp:
    id: str
    case_id: str
    province: str
    referral_id: str | None
    template: str
    due_at: datetime
    status: str = "scheduled"
    events: list[Event] = field(default_factory=list)


def plan_referral_checkin(
    requested: ReferralRequested,
    profile: ContactProfile | None,
    *,
    message_id: str,
    now: datetime,
    delay: timedelta,
) -> FollowUp | None:
    """A check-in after a referral is requested, only if she agreed to SMS contact."""
    if profile is None:
        raise CaseNotKnownYet(f"case {requested.case_id} not yet known to notification")
    if not profile.sms_consent:
        return None
    follow_up = FollowUp(
        id=message_id,
        case_id=requested.case_id,
        province=requested.province,
        referral_id=requested.referral_id,
        template="referral_checkin",
        due_at=now + delay,
    )
    follow_up.events.append(
        FollowUpScheduled(
            message_id=message_id,
            case_id=follow_up.case_id,
            province=follow_up.province,
            referral_id=follow_up.referral_id,
            template=follow_up.template,
            due_at=follow_up.due_at,
        )
    )
    return follow_up


def render(template: str, language: str) -> str:
    """The text of ``template`` in her language (Vietnamese when we have no translation)."""
    texts = TEMPLATES[template]
    return texts.get(language) or texts["vi"]
