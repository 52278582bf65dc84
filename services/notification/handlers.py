"""Notification's event subscribers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from faststream import Context
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsRouter
from faststream.nats.message import NatsBatchMessage

from services.notification.domain import plan_referral_checkin
from services.notification.settings import NotificationSettings
from services.notification.store import ContactProfileRow, FollowUpRow
from shared.envelope import Envelope
from shared.events import CaseOpened, ReferralRequested
from shared.runtime import Runtime
from shared.streams import CASE, REFERRAL
from shared.uow import UnitOfWork


async def apply_case_opened(uow: UnitOfWork, env: Envelope) -> None:
    """Remember what she agreed to: notification never contacts a case it has no consent for."""
    opened = env.data
    assert isinstance(opened, CaseOpened)
    await uow.session.merge(
        ContactProfileRow(case_id=opened.case_id, province=opened.province, sms_consent=opened.consent.sms)
    )


def build_router(rt: Runtime, settings: NotificationSettings) -> NatsRouter:
    router = NatsRouter()

    async def apply_referral_requested(uow: UnitOfWork, env: Envelope) -> None:
        requested = env.data
        assert isinstance(requested, ReferralRequested)
        profile = await uow.session.get(ContactProfileRow, requested.case_id)
        follow_up = plan_referral_checkin(
            requested,
            profile.to_domain() if profile else None,
            message_id=str(uuid.uuid4()),
            now=datetime.now(UTC),
            delay=timedelta(seconds=settings.checkin_delay),
        )
        if follow_up is not None:
            uow.session.add(FollowUpRow.from_domain(follow_up))
            uow.emit(*follow_up.events)

    case_opened = rt.event_consumer("notification-case-opened", CASE.name, apply_case_opened)
    referral_requested = rt.event_consumer(
        "notification-referral-requested", REFERRAL.name, apply_referral_requested
    )

    @router.subscriber(
        "osso.case.*.opened",
        stream=JStream(CASE.name, declare=False),
        durable="notification-case-opened",
        config=rt.consumer_config("notification-case-opened", CASE.name),
        pull_sub=rt.pull_sub(),
        ack_policy=AckPolicy.MANUAL,
        description="case.opened -> her contact consent",
    )
    async def on_case_opened(msg: NatsBatchMessage = Context("message")) -> None:
        await case_opened.process(msg.raw_message)

    @router.subscriber(
        "osso.referral.*.requested",
        stream=JStream(REFERRAL.name, declare=False),
        durable="notification-referral-requested",
        config=rt.consumer_config("notification-referral-requested", REFERRAL.name),
        pull_sub=rt.pull_sub(),
        ack_policy=AckPolicy.MANUAL,
        description="referral.requested -> a check-in follow-up, if she agreed to SMS",
    )
    async def on_referral_requested(msg: NatsBatchMessage = Context("message")) -> None:
        await referral_requested.process(msg.raw_message)

    return router
