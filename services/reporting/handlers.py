"""Reporting's event subscribers: every event stream, each with its own durable consumer.

A fetched batch is applied in one transaction (``batch.py``): the figures, the keyed facts and the
inbox rows commit together, then the messages are acked. An event seen before (inbox) is acked and
skipped; an event that fails is rolled back alone, recorded and nacked, and dead-lettered after
``max_deliver`` attempts, as every OSSO consumer does (``shared/consumer.py``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from faststream import Context
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsRouter
from faststream.nats.message import NatsBatchMessage
from nats.aio.msg import Msg
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.reporting.batch import apply_batch, decode_fast
from services.reporting.keys import hasher_for, phases_for
from services.reporting.periods import Phases
from services.reporting.projections import Hasher, Projection
from services.reporting.settings import ReportingSettings
from services.reporting.store import LIVE, ProjectionTables, SqlState
from shared.consumer import EventConsumer
from shared.envelope import Envelope, MalformedEvent
from shared.events import Event
from shared.logs import get_logger
from shared.metrics import BATCH_SECONDS, EVENTS_CONSUMED
from shared.runtime import Runtime
from shared.streams import ACTIVITY, CASE, NOTIFICATION, REFERRAL, StreamSpec
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


class ProjectionConsumer(EventConsumer):
    """An idempotent consumer that applies its whole batch at once (see ``batch.py``)."""

    def __init__(self, rt: Runtime, durable: str, stream: str, hasher: Hasher, phases: Phases) -> None:
        super().__init__(rt, durable, stream, self._unused)
        self.hasher = hasher
        self.phases = phases

    @staticmethod
    async def _unused(uow: UnitOfWork, env: Envelope) -> None:  # pragma: no cover
        raise NotImplementedError

    async def process(self, msgs: list[Msg]) -> None:
        started = time.perf_counter()
        decoded: list[tuple[Msg, Envelope]] = []
        for m in msgs:
            try:
                decoded.append((m, decode_fast(m.headers, m.data)))
            except MalformedEvent as exc:
                await self._dead_letter_now(m, str(exc))
        inbox = self.rt.tables.inbox
        durable = self.durable

        def work(session: Session) -> tuple[list[Msg], list[Msg], list[tuple[Msg, Envelope, str]]]:
            ids = [env.id for _, env in decoded]
            seen = set(
                session.execute(
                    select(inbox.c.event_id).where(inbox.c.consumer == durable, inbox.c.event_id.in_(ids))
                ).scalars()
            )
            fresh: list[tuple[Msg, Envelope]] = []
            duplicates: list[Msg] = []
            for m, env in decoded:
                if env.id in seen:
                    duplicates.append(m)
                else:
                    seen.add(env.id)
                    fresh.append((m, env))
            errors = dict(apply_batch(session, [env.data for _, env in fresh], self.hasher, self.phases))
            applied = [(m, env) for n, (m, env) in enumerate(fresh) if n not in errors]
            failed = [(fresh[n][0], fresh[n][1], f"{type(e).__name__}: {e}") for n, e in errors.items()]
            if applied:
                now = datetime.now(UTC)
                session.execute(
                    insert(inbox),
                    [{"consumer": durable, "event_id": env.id, "applied_at": now} for _, env in applied],
                )
            return [m for m, _ in applied], duplicates, failed

        try:
            async with self.rt.uow() as uow:
                applied, duplicates, failed = await uow.session.run_sync(work)
                await uow.commit()
        except Exception as exc:
            # The batch transaction itself failed (database down, lock timeout): retry all later.
            log.warning("batch_failed", consumer=durable, error=type(exc).__name__, detail=str(exc)[:300])
            for m, _ in decoded:
                await self._nak(m)
            EVENTS_CONSUMED.labels(self.rt.name, durable, "failed").inc(len(decoded))
            return
        for m in applied + duplicates:
            await m.ack()
        if failed:
            await self._record_failures(failed)
            for m, _, _ in failed:
                await self._nak(m)
        EVENTS_CONSUMED.labels(self.rt.name, durable, "applied").inc(len(applied))
        if duplicates:
            EVENTS_CONSUMED.labels(self.rt.name, durable, "duplicate").inc(len(duplicates))
        if failed:
            EVENTS_CONSUMED.labels(self.rt.name, durable, "failed").inc(len(failed))
        BATCH_SECONDS.labels(self.rt.name, durable).observe(time.perf_counter() - started)


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
    hasher, phases = hasher_for(settings), phases_for(settings)
    for durable, stream in SUBSCRIPTIONS:
        _subscribe(router, rt, durable, stream, ProjectionConsumer(rt, durable, stream.name, hasher, phases))
    return router
