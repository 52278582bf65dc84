"""Referral's event subscribers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from faststream import Context
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsRouter
from faststream.nats.message import NatsBatchMessage

from services.referral.domain import refer_new_case
from services.referral.store import ReferralRow, partners_in
from shared.envelope import Envelope
from shared.events import CaseOpened
from shared.runtime import Runtime
from shared.streams import CASE
from shared.uow import UnitOfWork


async def apply_case_opened(uow: UnitOfWork, env: Envelope) -> None:
    """Refer each need of a new case to a partner in her province (or record that none fits)."""
    opened = env.data
    assert isinstance(opened, CaseOpened)
    partners = await partners_in(uow.session, opened.province)
    referrals, unmatched = refer_new_case(opened, partners, lambda: str(uuid.uuid4()), datetime.now(UTC))
    for r in referrals:
        uow.session.add(ReferralRow.from_domain(r))
        uow.emit(*r.events)
    uow.emit(*unmatched)


def build_router(rt: Runtime) -> NatsRouter:
    router = NatsRouter()
    case_opened = rt.event_consumer("referral-case-opened", CASE.name, apply_case_opened)

    @router.subscriber(
        "osso.case.*.opened",
        stream=JStream(CASE.name, declare=False),
        durable="referral-case-opened",
        config=rt.consumer_config("referral-case-opened", CASE.name),
        pull_sub=rt.pull_sub(),
        ack_policy=AckPolicy.MANUAL,  # acked by the consumer after its transaction commits
        description="case.opened -> referral.requested per need (or referral.unmatched)",
    )
    async def on_case_opened(msg: NatsBatchMessage = Context("message")) -> None:
        await case_opened.process(msg.raw_message)

    return router
