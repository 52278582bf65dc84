"""Intake's event subscribers: her opt-out reply (from notification) withdraws consent for that
channel, recorded like any other consent change and published as ``case.consent_changed``."""

from __future__ import annotations

from datetime import UTC, datetime

from faststream.nats import NatsRouter

from services.intake.casefile import to_domain, write_back
from services.intake.store import CaseRow, ConsentRecordRow
from shared.envelope import Envelope
from shared.events import ConsentPurpose, OptedOut
from shared.runtime import Runtime
from shared.streams import NOTIFICATION
from shared.uow import UnitOfWork

OPT_OUT_DURABLE = "intake-opt-outs"


async def apply_opted_out(uow: UnitOfWork, env: Envelope) -> None:
    """Withdraw consent for the channel she opted out of. A case that is unknown, erased or
    already withdrawn is a no-op (idempotent: redelivery changes nothing)."""
    event = env.data
    if not isinstance(event, OptedOut):
        return
    row = await uow.session.get(CaseRow, event.case_id)
    if row is None or row.erased_at is not None:
        return
    case = to_domain(row)
    purpose = ConsentPurpose(event.channel.value)
    now = datetime.now(UTC)
    if case.set_consent(purpose, False, recorded_by="sms_opt_out", at=event.at):
        uow.session.add(
            ConsentRecordRow(
                case_id=case.id,
                purpose=purpose.value,
                granted=False,
                recorded_by="sms_opt_out",
                actor="service:notification",
                at=event.at,
            )
        )
        write_back(case, row, now)
        uow.session.add(row)
        uow.emit(*case.events)


def build_router(rt: Runtime) -> NatsRouter:
    router = NatsRouter()
    opt_outs = rt.event_consumer(OPT_OUT_DURABLE, NOTIFICATION.name, apply_opted_out)

    rt.subscribe(
        router,
        "osso.notification.*.opted_out",
        opt_outs,
        "notification.opted_out -> consent withdrawn for that channel",
        name="on_opted_out",
    )

    return router
