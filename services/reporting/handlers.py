"""Reporting's event subscribers: every event stream, each with its own durable consumer.

Each event is applied by the pure projection (``projections.py``) against the live tables, inside
the consumer's savepoint, so the figures, the keyed facts and the inbox row commit together."""

from __future__ import annotations

from faststream import Context
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsRouter
from faststream.nats.message import NatsBatchMessage
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.reporting.keys import hasher_for, phases_for
from services.reporting.periods import Phases
from services.reporting.projections import Hasher, Projection
from services.reporting.settings import ReportingSettings
from services.reporting.store import LIVE, ProjectionTables, SqlState
from shared.consumer import Apply, EventConsumer
from shared.envelope import Envelope
from shared.events import Event
from shared.runtime import Runtime
from shared.streams import ACTIVITY, CASE, NOTIFICATION, REFERRAL, StreamSpec
from shared.uow import UnitOfWork


def apply_to(
    session: Session | Connection,
    event: Event,
    hasher: Hasher,
    phases: Phases,
    tables: ProjectionTables = LIVE,
) -> None:
    """Apply one event to the projection tables in ``session`` (a sync session)."""
    state = SqlState(session, tables)
    Projection(state, hasher, phases).apply(event)
    state.flush()


def make_apply(hasher: Hasher, phases: Phases) -> Apply:
    async def apply_event(uow: UnitOfWork, env: Envelope) -> None:
        await uow.session.run_sync(apply_to, env.data, hasher, phases)

    return apply_event


#: Durable consumer name and the stream it reads.
SUBSCRIPTIONS = (
    ("reporting-case-events", CASE),
    ("reporting-activity-events", ACTIVITY),
    ("reporting-referral-events", REFERRAL),
    ("reporting-notification-events", NOTIFICATION),
)


def _subscribe(
    router: NatsRouter, rt: Runtime, durable: str, stream: StreamSpec, consumer: EventConsumer
) -> None:
    @router.subscriber(
        stream.subjects[0],
        stream=JStream(stream.name, declare=False),
        durable=durable,
        config=rt.consumer_config(durable, stream.name),
        pull_sub=rt.pull_sub(),
        ack_policy=AckPolicy.MANUAL,
        description=f"every {stream.name} event -> reporting projection",
    )
    async def on_event(msg: NatsBatchMessage = Context("message")) -> None:
        await consumer.process(msg.raw_message)


def build_router(rt: Runtime) -> NatsRouter:
    router = NatsRouter()
    settings = rt.settings
    assert isinstance(settings, ReportingSettings)
    apply_event = make_apply(hasher_for(settings), phases_for(settings))

    for durable, stream in SUBSCRIPTIONS:
        _subscribe(router, rt, durable, stream, rt.event_consumer(durable, stream.name, apply_event))
    return router
