"""Notification rules: pure, no I/O. What is scheduled when, who may be contacted, when, and what
stops it. Times are aware datetimes; the clock is always passed in."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo

from services.notification.plans import FollowUpRule
from shared.events import Event, FollowUpScheduled, MessageCancelled, ReferralRequested
from shared.vntext import fold

#: Statuses of a message: waiting, claimed by a dispatcher and handed to the provider, and final.
SCHEDULED, SENDING = "scheduled", "sending"
SENT, DELIVERED, FAILED, CANCELLED = "sent", "delivered", "failed", "cancelled"
PENDING = (SCHEDULED,)
FINAL = (SENT, DELIVERED, FAILED, CANCELLED)


class Reason:
    """Codes of cancellations and failures (events carry codes, never prose)."""

    CASE_CLOSED = "case_closed"
    CASE_ERASED = "case_erased"
    CASE_UNKNOWN = "case_unknown"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    NO_CONSENT = "no_consent"
    DO_NOT_CONTACT = "do_not_contact"
    CHANNEL_NOT_ALLOWED = "channel_not_allowed"
    OPTED_OUT = "opted_out"
    NO_PHONE = "no_phone"
    REFERRAL_CLOSED = "referral_closed"
    APPOINTMENT_PASSED = "appointment_passed"
    PROVIDER_REJECTED = "provider_rejected"
    PROVIDER_UNAVAILABLE = "provider_unavailable"


class CaseNotKnownYet(RuntimeError):
    """A referral arrived before the case it belongs to; retried until the case event is in."""


@dataclass
class ContactProfile:
    """What notification knows about contacting her: consent and preferences, never her number."""

    case_id: str
    province: str
    sms_consent: bool
    language: str = "vi"
    safe_hours_start: str | None = None
    safe_hours_end: str | None = None
    do_not_contact: bool = False
    sms_channel: bool = True
    closed: bool = False
    erased: bool = False

    def why_not_contact(self) -> str | None:
        """The reason code for which she may not get an SMS now, or None if she may."""
        if self.erased:
            return Reason.CASE_ERASED
        if self.closed:
            return Reason.CASE_CLOSED
        if self.do_not_contact:
            return Reason.DO_NOT_CONTACT
        if not self.sms_consent:
            return Reason.NO_CONSENT
        if not self.sms_channel:
            return Reason.CHANNEL_NOT_ALLOWED
        return None


@dataclass
class FollowUp:
    id: str
    case_id: str
    province: str
    referral_id: str | None
    template: str
    due_at: datetime
    plan: str | None = None
    appointment_at: datetime | None = None
    status: str = SCHEDULED
    reason: str | None = None
    events: list[Event] = field(default_factory=list)

    def cancel(self, reason: str, at: datetime) -> bool:
        """Cancel if still pending; records ``MessageCancelled``. False when it was no longer pending."""
        if self.status not in PENDING:
            return False
        self.status = CANCELLED
        self.reason = reason
        self.events.append(
            MessageCancelled(
                message_id=self.id, case_id=self.case_id, province=self.province, reason=reason, at=at
            )
        )
        return True


def plan_follow_ups(
    rules: list[FollowUpRule],
    *,
    case_id: str,
    province: str,
    referral_id: str | None,
    profile: ContactProfile | None,
    now: datetime,
    new_id: Callable[[], str],
    delay_scale: float = 1.0,
    appointment_at: datetime | None = None,
) -> list[FollowUp]:
    """The follow-ups ``rules`` schedule for one event, none if she may not be contacted.

    ``new_id`` is a callable returning a fresh message id. Delays are multiplied by ``delay_scale``.
    """
    if profile is None:
        raise CaseNotKnownYet(f"case {case_id} not yet known to notification")
    if not rules or profile.why_not_contact() is not None:
        return []
    out = []
    for rule in rules:
        if rule.before_appointment is not None and appointment_at is not None:
            if appointment_at <= now:
                continue  # the appointment is already over: nothing to remind
            # The wait until the reminder is scaled like every delay (0: at once).
            wait = max(appointment_at - rule.before_appointment - now, timedelta(0))
            due = now + wait * delay_scale
        else:
            due = now + rule.after * delay_scale
        f = FollowUp(
            id=new_id(),
            case_id=case_id,
            province=province,
            referral_id=referral_id,
            template=rule.template,
            due_at=due,
            plan=rule.name,
            appointment_at=appointment_at if rule.before_appointment is not None else None,
        )
        f.events.append(
            FollowUpScheduled(
                message_id=f.id,
                case_id=case_id,
                province=province,
                referral_id=referral_id,
                template=f.template,
                due_at=due,
            )
        )
        out.append(f)
    return out


# -- quiet hours ---------------------------------------------------------------------------------


def parse_hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


@dataclass(frozen=True)
class SafeHours:
    """The local window in which she may receive messages, ``[start, end)``; may wrap midnight."""

    start: time
    end: time
    tz: tzinfo

    @classmethod
    def of(cls, start: str, end: str, tz: tzinfo) -> SafeHours:
        return cls(parse_hhmm(start), parse_hhmm(end), tz)

    def allows(self, at: datetime) -> bool:
        t = at.astimezone(self.tz).time().replace(tzinfo=None)
        if self.start == self.end:
            return True  # a window of the whole day
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def next_allowed(self, at: datetime) -> datetime:
        """``at`` itself when allowed, else the next start of the window (local time, DST-safe)."""
        if self.allows(at):
            return at
        local = at.astimezone(self.tz)
        candidate = datetime.combine(local.date(), self.start, tzinfo=self.tz)
        if candidate <= local:
            candidate = datetime.combine(local.date() + timedelta(days=1), self.start, tzinfo=self.tz)
        return candidate.astimezone(at.tzinfo)


def appointment_text(at: datetime | None, language: str, tz: tzinfo) -> str | None:
    """Her appointment as she reads it, in local time: "09:00 ngày 25/11" / "25/11 at 09:00"."""
    if at is None:
        return None
    local = at.astimezone(tz)
    if language == "en":
        return f"{local:%d/%m} at {local:%H:%M}"
    return f"{local:%H:%M} ngày {local:%d/%m}"


# -- opt-out replies ---------------------------------------------------------------------------------

#: Replies that mean "stop", folded (no case, no diacritics): HUY/HỦY, TU CHOI/TỪ CHỐI, DUNG/DỪNG, STOP.
OPT_OUT_KEYWORDS: tuple[tuple[str, ...], ...] = (
    ("huy",),
    ("tu", "choi"),
    ("tuchoi",),
    ("dung",),
    ("stop",),
)
_WORDS = re.compile(r"[^\W_]+")


def is_opt_out(text: str) -> bool:
    """Whether a reply starts with an opt-out keyword (any case, with or without diacritics).

    Only the first words count, so "Huy" in the middle of a sentence is not an opt-out, but
    "HỦY", "huỷ.", "Tu choi nhan tin" and "STOP please" are.
    """
    words = _WORDS.findall(fold(text))
    return any(tuple(words[: len(k)]) == k for k in OPT_OUT_KEYWORDS)


# -- walking-skeleton API, kept for its callers ------------------------------------------------------


def plan_referral_checkin(
    requested: ReferralRequested,
    profile: ContactProfile | None,
    *,
    message_id: str,
    now: datetime,
    delay: timedelta,
) -> FollowUp | None:
    """A single check-in ``delay`` after a referral is requested (the plans generalise this)."""
    from services.notification.plans import FollowUpRule

    rule = FollowUpRule(
        name="referral_checkin", on="referral.requested", template="referral_checkin", after=delay
    )
    planned = plan_follow_ups(
        [rule],
        case_id=requested.case_id,
        province=requested.province,
        referral_id=requested.referral_id,
        profile=profile,
        now=now,
        new_id=lambda: message_id,
    )
    return planned[0] if planned else None


def render(template: str, language: str) -> str:
    """The text of ``template`` in her language from the default catalogue (Vietnamese by default)."""
    from services.notification.templates import default_templates

    return default_templates().render(template, language)
