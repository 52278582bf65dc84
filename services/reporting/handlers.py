"""Reporting's event subscribers: every event stream, each with its own durable consumer.

A fetched batch is applied in one transaction (``batch.py``): the figures, the keyed facts and the
inbox rows commit together, then the messages are acked. An event seen before (inbox) is acked and
skipped; an event that fails is rolled back alone, recorded and nacked, and dead-lettered after
``max_deliver`` attempts, as every OSSO consumer does (``shared/consumer.py``)."""

from __future__ import annotations

from faststream.nats import NatsRouter
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.reporting.batch import apply_batch, decode_fast
from services.reporting.keys import hasher_for, phases_for
from services.reporting.periods import Phases
from services.reporting.projections import Hasher, Projection
from services.reporting.settings import ReportingSettings
from services.reporting.store import LIVE, ProjectionTables, SqlState
from shared.consumer import EventConsumer
from shared.envelope import Envelope
from shared.events import Event
from shared.logs import get_logger
from shared.runtime import Runtime
from shared.streams import ACTIVITY, CASE, NOTIFICATION, REFERRAL
from shared.uow import UnitOfWork

log = get_logger(__name__)


def apply_to(
    session: Session | Connection,
    event: Event,
    hasher: Hasher,
    phases: Phases,
    tables: ProjectionTables = LIVE,
) -> None:
    """Apply one event to the projection tables in ``session`` (a sync session or connection)."""
    state = SqlState(session, tables)
    Projection(state, hasher, phases).apply(event)
    state.flush()


def projection_consumer(
    rt: Runtime, durable: str, stream: str, hasher: Hasher, phases: Phases
) -> EventConsumer:
    """The shared idempotent consumer (inbox, ack after commit, failures, heartbeats), applying a
    whole batch to the projection at once (``batch.py``) instead of event by event."""

    async def apply_all(uow: UnitOfWork, envs: list[Envelope]) -> dict[int, BaseException]:
        events = [env.data for env in envs]
        return await uow.session.run_sync(lambda session: dict(apply_batch(session, events, hasher, phases)))

    return rt.event_consumer(durable, stream, apply_batch=apply_all, decoder=decode_fast)


#: Durable consumer name and the stream it reads.
SUBSCRIPTIONS = (
    ("reporting-case-events", CASE),
    ("reporting-activity-events", ACTIVITY),
    ("reporting-referral-events", REFERRAL),
    ("reporting-notification-events", NOTIFICATION),
)


def build_router(rt: Runtime) -> NatsRouter:
    router = NatsRouter()
    settings = rt.settings
    assert isinstance(settings, ReportingSettings)
    hasher, phases = hasher_for(settings), phases_for(settings)

    async def current_layout() -> None:
        """The consumers write the current layout: tables of an older one are rebuilt first."""
        from services.reporting.rebuild import ensure_layout  # rebuild.py imports this module

        await ensure_layout(settings, rt.engine)

    rt.add_startup(current_layout)
    for durable, stream in SUBSCRIPTIONS:
        rt.subscribe(
            router,
            stream.subjects[0],
            projection_consumer(rt, durable, stream.name, hasher, phases),
            f"every {stream.name} event -> reporting projection",
            name="on_event",
        )
    return router
