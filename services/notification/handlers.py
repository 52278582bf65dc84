"""Notification's event subscribers: what she agreed to, what to schedule, what to cancel.

- ``notification-case-events`` (``osso.case.*.*``, one ordered consumer for every case event):
  consent, language, safe hours, do-not-contact, closed, erased; cancels her pending messages
  when she may no longer be contacted.
- ``notification-referral-requested`` / ``notification-referral-events``: the follow-up plans.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from faststream.nats import NatsRouter
from sqlalchemy import and_, or_
from sqlmodel import col, select

from services.notification.domain import (
    PENDING,
    SENDING,
    CaseNotKnownYet,
    ContactProfile,
    Reason,
    plan_follow_ups,
)
from services.notification.plans import Plans
from services.notification.settings import NotificationSettings
from services.notification.store import ContactProfileRow, FollowUpRow
from shared.envelope import Envelope
from shared.events import (
    CaseErased,
    CaseOpened,
    CaseStatus,
    CaseStatusChanged,
    CaseUpdated,
    ConsentChanged,
    ConsentPurpose,
    ContactChannel,
    ContactPreferences,
    Event,
    ReferralAccepted,
    ReferralCompleted,
    ReferralEvent,
    ReferralRequested,
    ReferralStarted,
)
from shared.ids import new_id
from shared.runtime import Runtime
from shared.streams import CASE, REFERRAL
from shared.uow import UnitOfWork

Clock = Callable[[], datetime]


async def cancel_pending(
    uow: UnitOfWork, reason: str, at: datetime, *, case_id: str, referral_id: str | None = None
) -> int:
    """Cancel every pending message of her case (or of one referral), emitting ``MessageCancelled``.

    Pending = scheduled, or claimed by a dispatcher that crashed (its lease ran out). A message a
    live dispatcher is handing to the provider right now is not pending any more."""
    q = select(FollowUpRow).where(
        FollowUpRow.case_id == case_id,
        or_(
            col(FollowUpRow.status).in_(PENDING),
            and_(col(FollowUpRow.status) == SENDING, col(FollowUpRow.lease_until) < at),
        ),
    )
    if referral_id is not None:
        q = q.where(FollowUpRow.referral_id == referral_id)
    rows = (await uow.session.execute(q)).scalars().all()
    for row in rows:
        f = row.to_domain()
        f.status = "scheduled"  # a crashed claim counts as pending
        f.cancel(reason, at)
        row.status, row.reason = f.status, f.reason
        row.claimed_by, row.lease_until = None, None
        uow.emit(*f.events)
    return len(rows)


def _apply_contact(row: ContactProfileRow, contact: ContactPreferences | None) -> None:
    if contact is None:
        return
    row.language = contact.language
    row.safe_hours_start = contact.safe_hours_start
    row.safe_hours_end = contact.safe_hours_end
    row.do_not_contact = contact.do_not_contact
    row.sms_channel = ContactChannel.SMS in contact.channels


async def apply_case_event(uow: UnitOfWork, env: Envelope) -> None:
    """Keep her contact profile; cancel pending messages when she may no longer be contacted."""
    event = env.data
    if not isinstance(event, CaseOpened | CaseUpdated | CaseStatusChanged | CaseErased | ConsentChanged):
        return  # sessions, needs: nothing for notification
    row = await uow.session.get(ContactProfileRow, event.case_id)
    if isinstance(event, CaseErased):
        if row is None:
            row = ContactProfileRow(case_id=event.case_id, province=event.province, sms_consent=False)
            uow.session.add(row)
        row.erased, row.sms_consent = True, False
        await cancel_pending(uow, Reason.CASE_ERASED, event.at, case_id=event.case_id)
        await _forget_numbers(uow, event.case_id)
        return
    if row is not None and row.erased:
        return  # an erased case is never contacted again, whatever arrives late
    if isinstance(event, CaseOpened):
        if row is None:
            row = ContactProfileRow(case_id=event.case_id, province=event.province, sms_consent=False)
            uow.session.add(row)
        row.province = event.province
        row.sms_consent = event.consent.sms
        row.opened = True
        _apply_contact(row, event.contact)
        at = event.opened_at
    elif row is None:
        return  # nothing is scheduled for a case notification never heard of
    elif isinstance(event, CaseUpdated):
        _apply_contact(row, event.contact)
        at = event.at
    elif isinstance(event, CaseStatusChanged):
        row.closed = event.to_status == CaseStatus.CLOSED
        at = event.at
    else:
        if event.purpose != ConsentPurpose.SMS:
            return
        row.sms_consent = event.granted
        at = event.at
    why_not = row.to_domain().why_not_contact()
    if why_not is not None:
        if why_not == Reason.NO_CONSENT and isinstance(event, ConsentChanged):
            why_not = Reason.OPTED_OUT if event.recorded_by == "sms_opt_out" else Reason.CONSENT_WITHDRAWN
        await cancel_pending(uow, why_not, at, case_id=event.case_id)


async def _forget_numbers(uow: UnitOfWork, case_id: str) -> None:
    """Erasure: drop the keyed hashes of her number (the only trace of it notification had)."""
    rows = (await uow.session.execute(select(FollowUpRow).where(FollowUpRow.case_id == case_id))).scalars()
    for row in rows:
        row.phone_hash = None


class FollowUpPlanner:
    """Turns referral events into follow-ups according to the plans."""

    TRIGGERS: ClassVar[dict[type[Event], str]] = {
        ReferralAccepted: "referral.accepted",
        ReferralStarted: "referral.in_progress",
        ReferralCompleted: "referral.completed",
    }

    def __init__(self, plans: Plans, settings: NotificationSettings, clock: Clock) -> None:
        self.plans = plans
        self.settings = settings
        self.clock = clock

    async def _profile(self, uow: UnitOfWork, case_id: str) -> ContactProfile | None:
        row = await uow.session.get(ContactProfileRow, case_id)
        if row is None or not (row.opened or row.erased):
            return None
        return row.to_domain()

    async def schedule(
        self, uow: UnitOfWork, trigger: str, event: ReferralEvent, appointment: datetime | None
    ) -> None:
        rules = self.plans.rules_for(trigger)
        if not rules:
            return
        follow_ups = plan_follow_ups(
            rules,
            case_id=event.case_id,
            province=event.province,
            referral_id=event.referral_id,
            profile=await self._profile(uow, event.case_id),
            now=self.clock(),
            new_id=new_id,  # time-ordered, as every id of the platform (shared/ids.py)
            delay_scale=self.settings.delay_scale,
            appointment_at=appointment,
        )
        for f in follow_ups:
            uow.session.add(FollowUpRow.from_domain(f))
            uow.emit(*f.events)

    async def apply_referral_requested(self, uow: UnitOfWork, env: Envelope) -> None:
        requested = env.data
        assert isinstance(requested, ReferralRequested)
        await self.schedule(uow, "referral.requested", requested, None)

    async def apply_referral_event(self, uow: UnitOfWork, env: Envelope) -> None:
        event = env.data
        if not isinstance(event, ReferralEvent) or isinstance(event, ReferralRequested):
            return
        if f"referral.{event.NAME}" in self.plans.cancel.referral:
            at = getattr(event, "at", None) or self.clock()
            await cancel_pending(
                uow, Reason.REFERRAL_CLOSED, at, case_id=event.case_id, referral_id=event.referral_id
            )
        trigger = self.TRIGGERS.get(type(event))
        if trigger is not None:
            appointment = event.appointment_at if isinstance(event, ReferralAccepted) else None
            await self.schedule(uow, trigger, event, appointment)


def build_router(rt: Runtime, planner: FollowUpPlanner) -> NatsRouter:
    router = NatsRouter()
    apply_referral_requested = planner.apply_referral_requested
    apply_referral_event = planner.apply_referral_event

    consumers = {
        "notification-case-events": (
            CASE,
            "osso.case.*.*",
            apply_case_event,
            "case events -> her contact profile; cancellations",
        ),
        "notification-referral-requested": (
            REFERRAL,
            "osso.referral.*.requested",
            apply_referral_requested,
            "referral.requested -> follow-ups of the plans, if she agreed to SMS",
        ),
        "notification-referral-events": (
            REFERRAL,
            "osso.referral.*.*",
            apply_referral_event,
            "referral accepted/completed -> follow-ups; rejected/cancelled/failed -> cancellations",
        ),
    }
    for durable, (stream, subject, apply, description) in consumers.items():
        rt.subscribe(router, subject, rt.event_consumer(durable, stream.name, apply), description)
    return router


__all__ = ["CaseNotKnownYet", "apply_case_event", "build_router", "cancel_pending"]
