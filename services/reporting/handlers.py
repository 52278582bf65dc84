"""Reporting's event subscribers: every event stream, each with its own durable consumer."""

from __future__ import annotations

from faststream import Context
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsRouter
from faststream.nats.message import NatsBatchMessage

from services.reporting import store
from services.reporting.domain import contributions
from shared.envelope import Envelope
from shared.runtime import Runtime
from shared.streams import CASE, NOTIFICATION, REFERRAL
from shared.uow import UnitOfWork


async def apply_event(uow: UnitOfWork, env: Envelope) -> None:
    for contribution in contributions(env.data):
        await store.add(uow.session, contribution)


def build_router(rt: Runtime) -> NatsRouter:
    router = NatsRouter()
    cases = rt.event_consumer("reporting-case-events", CASE.name, apply_event)
    referrals = rt.event_consumer("reporting-referral-events", REFERRAL.name, apply_event)
    notifications = rt.event_consumer("reporting-notification-events", NOTIFICATION.name, apply_event)

    @router.subscriber(
        "osso.case.>",
        stream=JStream(CASE.name, declare=False),
        durable="reporting-case-events",
        config=rt.consumer_config("reporting-case-events", CASE.name),
        pull_sub=rt.pull_sub(),
        ack_policy=AckPolicy.MANUAL,
        description="every case event -> counts",
    )
    async def on_case_event(msg: NatsBatchMessage = Context("message")) -> None:
        await cases.process(msg.raw_message)

    @router.subscriber(
        "osso.referral.>",
        stream=JStream(REFERRAL.name, declare=False),
        durable="reporting-referral-events",
        config=rt.consumer_config("reporting-referral-events", REFERRAL.name),
        pull_sub=rt.pull_sub(),
        ack_policy=AckPolicy.MANUAL,
        description="every referral event -> counts",
    )
    async def on_referral_event(msg: NatsBatchMessage = Context("message")) -> None:
        await referrals.process(msg.raw_message)

    @router.subscriber(
        "osso.notification.>",
        stream=JStream(NOTIFICATION.name, declare=False),
        durable="reporting-notification-events",
        config=rt.consumer_config("reporting-notification-events", NOTIFICATION.name),
        pull_sub=rt.pull_sub(),
        ack_policy=AckPolicy.MANUAL,
        description="every notification event -> counts",
    )
    async def on_notification_event(msg: NatsBatchMessage = Context("message")) -> None:
        await notifications.process(msg.raw_message)

    return router
