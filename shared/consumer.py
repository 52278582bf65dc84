"""The idempotent consumer: applies a fetched batch in one transaction.

An event id is recorded in the ``inbox`` table in the same transaction as its effect, so an event
delivered twice (re-published, or redelivered after a crash before the ack) is applied once.
Acks are sent only after the commit. The batch is first applied without savepoints (three SQL
round trips fewer per event); if an event fails, the batch is redone with a savepoint per event so
that the failing one is rolled back alone, its error recorded, and it is redelivered after a delay
until ``max_deliver``; then the dead-letterer takes it. An event that cannot be parsed is
dead-lettered at once: redelivery could never fix it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from nats.aio.msg import Msg
from opentelemetry import trace
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from shared.deadletter import DeadLetterer
from shared.envelope import Envelope, MalformedEvent, decode
from shared.logs import get_logger, scrub
from shared.metrics import BATCH_SECONDS, EVENTS_CONSUMED
from shared.telemetry import extract_context, tracer

if TYPE_CHECKING:
    from shared.runtime import Runtime
    from shared.uow import UnitOfWork

log = get_logger(__name__)

Apply = Callable[["UnitOfWork", Envelope], Awaitable[None]]
#: Applies a whole batch (new events only) and returns the failures by index; a failed event must
#: leave no effect. For projections that are far cheaper to update a batch at a time.
BatchApply = Callable[["UnitOfWork", list[Envelope]], Awaitable[dict[int, BaseException]]]
Decode = Callable[[dict[str, str] | None, bytes], Envelope]


class _IsolateFailures(Exception):
    """An event of a batch failed on the fast path: redo the batch event by event."""


class EventConsumer:
    def __init__(
        self,
        rt: Runtime,
        durable: str,
        stream: str,
        apply: Apply | None = None,
        *,
        apply_batch: BatchApply | None = None,
        decoder: Decode = decode,
    ) -> None:
        if (apply is None) == (apply_batch is None):
            raise ValueError("give exactly one of apply (per event) and apply_batch (whole batch)")
        self.rt = rt
        self.durable = durable
        self.stream = stream
        self.apply = apply
        self.apply_batch = apply_batch
        self.decoder = decoder
        self._tracer = tracer(f"osso.{rt.name}")

    @property
    def _deadletters(self) -> DeadLetterer:
        return self.rt.deadletters

    async def process(self, msgs: list[Msg]) -> None:
        started = time.perf_counter()
        decoded: list[tuple[Msg, Envelope]] = []
        for m in msgs:
            try:
                decoded.append((m, self.decoder(m.headers, m.data)))
            except MalformedEvent as exc:
                await self._dead_letter_now(m, str(exc))

        heartbeat = asyncio.create_task(self._keep_alive([m for m, _ in decoded]))  # noqa: RUF006 - cancelled below
        try:
            try:
                # Fast path: the whole batch in one transaction, no savepoints.
                applied, duplicates, failed = await self._apply(decoded, isolate=False)
            except _IsolateFailures:
                # One event failed: redo the batch with a savepoint per event, so the others commit.
                applied, duplicates, failed = await self._apply(decoded, isolate=True)
        except Exception as exc:
            # The batch transaction itself failed (database down, lock timeout): retry all later.
            log.warning(
                "batch_failed", consumer=self.durable, error=type(exc).__name__, detail=str(exc)[:300]
            )
            for m, _ in decoded:
                await self._nak(m)
            EVENTS_CONSUMED.labels(self.rt.name, self.durable, "failed").inc(len(decoded))
            return
        finally:
            heartbeat.cancel()

        for m in applied + duplicates:
            await m.ack()
        if failed:
            await self._record_failures(failed)
            for m, _, _ in failed:
                await self._nak(m)
        EVENTS_CONSUMED.labels(self.rt.name, self.durable, "applied").inc(len(applied))
        if duplicates:
            EVENTS_CONSUMED.labels(self.rt.name, self.durable, "duplicate").inc(len(duplicates))
        if failed:
            EVENTS_CONSUMED.labels(self.rt.name, self.durable, "failed").inc(len(failed))
        BATCH_SECONDS.labels(self.rt.name, self.durable).observe(time.perf_counter() - started)

    async def _keep_alive(self, msgs: list[Msg]) -> None:
        """While a batch is being applied, tell the server every third of ``ack_wait`` that we are
        still on it: a slow batch (a loaded machine, a locked database) must not be redelivered to
        another replica, nor count towards ``max_deliver`` and end in the dead-letter stream."""
        interval = self.rt.settings.bus.ack_wait / 3
        while True:
            await asyncio.sleep(interval)
            for m in msgs:
                await m.in_progress()

    async def _apply(
        self, decoded: list[tuple[Msg, Envelope]], *, isolate: bool
    ) -> tuple[list[Msg], list[Msg], list[tuple[Msg, Envelope, str]]]:
        """Apply a batch in one transaction; returns (applied, duplicates, failed).

        Without ``isolate`` the first failure raises :class:`_IsolateFailures` (and everything is
        rolled back); with it, each event runs in its own savepoint and failures are collected."""
        applied: list[Msg] = []
        duplicates: list[Msg] = []
        failed: list[tuple[Msg, Envelope, str]] = []
        inbox = self.rt.tables.inbox
        async with self.rt.uow() as uow:
            ids = [env.id for _, env in decoded]
            seen: set[str] = set()
            if ids:
                query = select(inbox.c.event_id).where(
                    inbox.c.consumer == self.durable, inbox.c.event_id.in_(ids)
                )
                seen = set((await uow.session.execute(query)).scalars())
            applied_ids: list[str] = []
            if self.apply_batch is not None:
                fresh = []
                for m, env in decoded:
                    if env.id in seen:
                        duplicates.append(m)
                    else:
                        seen.add(env.id)
                        fresh.append((m, env))
                # One consumer span per event, each the child of the span that published it.
                spans = [self._start_span(m, env) for m, env in fresh]
                try:
                    errors = await self.apply_batch(uow, [env for _, env in fresh]) if fresh else {}
                finally:
                    for span in spans:
                        span.end()
                for n, (m, env) in enumerate(fresh):
                    if n in errors:
                        spans[n].set_status(trace.Status(trace.StatusCode.ERROR, type(errors[n]).__name__))
                        failed.append((m, env, f"{type(errors[n]).__name__}: {errors[n]}"))
                    else:
                        applied.append(m)
                        applied_ids.append(env.id)
            else:
                apply = self.apply
                assert apply is not None
                for m, env in decoded:
                    if env.id in seen:
                        duplicates.append(m)
                        continue
                    with self._span(m, env) as span:
                        try:
                            if isolate:
                                async with uow.savepoint():
                                    await apply(uow, env)
                            else:
                                await apply(uow, env)
                        except Exception as exc:
                            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
                            if not isolate:
                                raise _IsolateFailures from exc
                            failed.append((m, env, f"{type(exc).__name__}: {exc}"))
                            continue
                    seen.add(env.id)
                    applied.append(m)
                    applied_ids.append(env.id)
            if applied_ids:
                now = datetime.now(UTC)
                rows = [{"consumer": self.durable, "event_id": i, "applied_at": now} for i in applied_ids]
                await uow.session.execute(insert(inbox), rows)
            await uow.commit()
        return applied, duplicates, failed

    def _span(self, m: Msg, env: Envelope) -> AbstractContextManager[trace.Span]:
        """A consumer span, child of the span that published the event (trace context in headers)."""
        return self._tracer.start_as_current_span(
            f"{self.durable} process",
            context=extract_context(m.headers),
            kind=trace.SpanKind.CONSUMER,
            attributes=self._span_attributes(m, env),
        )

    def _start_span(self, m: Msg, env: Envelope) -> trace.Span:
        """The same span, started without becoming current (a batch applies many at once)."""
        return self._tracer.start_span(
            f"{self.durable} process",
            context=extract_context(m.headers),
            kind=trace.SpanKind.CONSUMER,
            attributes=self._span_attributes(m, env),
        )

    def _span_attributes(self, m: Msg, env: Envelope) -> dict[str, str]:
        # Ids and types only: nothing about her.
        return {
            "messaging.system": "nats",
            "messaging.destination.name": m.subject,
            "messaging.message.id": env.id,
            "messaging.consumer.group.name": self.durable,
            "cloudevents.event_type": env.type,
        }

    async def _nak(self, m: Msg) -> None:
        # Exponential backoff (capped at a minute), so a transient cause such as an event from
        # another stream that has not arrived yet gets time to resolve before the last attempt.
        attempt = m.metadata.num_delivered or 1
        await m.nak(delay=min(self.rt.settings.bus.nak_delay * 2 ** (attempt - 1), 60.0))

    async def _record_failures(self, failed: list[tuple[Msg, Envelope, str]]) -> None:
        """Keep each failure's last error, for the dead-letterer to store with the message."""
        t = self.rt.tables.failures
        now = datetime.now(UTC)
        for m, env, error in failed:
            seq = m.metadata.sequence.stream
            error = scrub(error)[:2000]
            log.warning(
                "event_failed",
                consumer=self.durable,
                event_id=env.id,
                stream_seq=seq,
                attempt=m.metadata.num_delivered,
                error=error,
            )
            for _ in range(3):
                try:
                    async with self.rt.sessions() as session, session.begin():
                        values = {
                            "error": error,
                            "attempts": m.metadata.num_delivered or 1,
                            "last_failed_at": now,
                        }
                        result = await session.execute(
                            update(t)
                            .where(t.c.consumer == self.durable, t.c.stream_seq == seq)
                            .values(**values)
                        )
                        if not result.rowcount:  # type: ignore[attr-defined]
                            await session.execute(
                                insert(t).values(
                                    consumer=self.durable, stream_seq=seq, event_id=env.id, **values
                                )
                            )
                    break
                except IntegrityError:
                    await asyncio.sleep(0.01)  # a replica inserted the same row: update it instead

    async def _dead_letter_now(self, m: Msg, reason: str) -> None:
        await self._deadletters.publish(
            consumer=self.durable,
            stream=m.metadata.stream,
            stream_seq=m.metadata.sequence.stream,
            subject=m.subject,
            headers=m.headers,
            body=m.data,
            reason=reason,
            deliveries=m.metadata.num_delivered or 1,
        )
        await m.term()
        EVENTS_CONSUMED.labels(self.rt.name, self.durable, "dead_lettered").inc()
