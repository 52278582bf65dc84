"""Dead-lettering: a message that failed past its delivery limit, or that is not a valid event,
is copied to the ``OSSO_DLQ`` stream with the reason, and the consumer keeps going.

Exhausted deliveries are announced by the server's MaxDeliveries advisory, captured in the
``OSSO_ADVISORIES`` stream; each service reads the advisories of its own consumers, fetches the
message by sequence and the last error its consumer recorded, and stores both in the DLQ.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import PlumbingTables
from shared.logs import get_logger, scrub
from shared.metrics import DEAD_LETTERS
from shared.streams import ADVISORIES, DLQ, MAX_DELIVERIES_ADVISORY

log = get_logger(__name__)

H_REASON = "osso-dlq-reason"
H_STREAM = "osso-dlq-stream"
H_SEQ = "osso-dlq-stream-seq"
H_SUBJECT = "osso-dlq-subject"
H_CONSUMER = "osso-dlq-consumer"
H_SERVICE = "osso-dlq-service"
H_DELIVERIES = "osso-dlq-deliveries"
H_AT = "osso-dlq-at"


def dlq_subject(service: str, consumer: str) -> str:
    return f"{DLQ.subjects[0][:-1]}{service}.{consumer}"


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as stored in the DLQ stream."""

    seq: int
    subject: str
    original_subject: str
    stream: str
    stream_seq: int
    service: str
    consumer: str
    reason: str
    deliveries: int
    at: str
    headers: dict[str, str]
    body: bytes

    @classmethod
    def from_headers(cls, seq: int, subject: str, headers: dict[str, str], body: bytes) -> DeadLetter:
        return cls(
            seq=seq,
            subject=subject,
            original_subject=headers.get(H_SUBJECT, ""),
            stream=headers.get(H_STREAM, ""),
            stream_seq=int(headers.get(H_SEQ, "0") or 0),
            service=headers.get(H_SERVICE, ""),
            consumer=headers.get(H_CONSUMER, ""),
            reason=headers.get(H_REASON, ""),
            deliveries=int(headers.get(H_DELIVERIES, "0") or 0),
            at=headers.get(H_AT, ""),
            headers=headers,
            body=body,
        )

    def original_headers(self) -> dict[str, str]:
        return {k: v for k, v in self.headers.items() if not k.startswith("osso-dlq-") and k != "Nats-Msg-Id"}


class DeadLetterer:
    def __init__(
        self,
        service: str,
        js: JetStreamContext,
        sessions: async_sessionmaker[AsyncSession],
        tables: PlumbingTables,
    ) -> None:
        self._service = service
        self._js = js
        self._sessions = sessions
        self._failures = tables.failures
        self._stopped = False

    async def publish(
        self,
        *,
        consumer: str,
        stream: str,
        stream_seq: int,
        subject: str,
        headers: dict[str, str] | None,
        body: bytes,
        reason: str,
        deliveries: int,
    ) -> None:
        """Store a message and the reason it failed in the dead-letter stream (idempotent)."""
        out = {k: v for k, v in (headers or {}).items() if k != "Nats-Msg-Id"}
        out.update(
            {
                H_REASON: scrub(reason)[:2000],
                H_STREAM: stream,
                H_SEQ: str(stream_seq),
                H_SUBJECT: subject,
                H_SERVICE: self._service,
                H_CONSUMER: consumer,
                H_DELIVERIES: str(deliveries),
                H_AT: datetime.now(UTC).isoformat(),
                # One dead letter per (stream message, consumer), however often we are told.
                "Nats-Msg-Id": f"dlq:{stream}:{stream_seq}:{consumer}",
            }
        )
        await self._js.publish(dlq_subject(self._service, consumer), body, headers=out)
        DEAD_LETTERS.labels(self._service).inc()
        log.warning("dead_lettered", consumer=consumer, stream=stream, stream_seq=stream_seq, reason=reason)

    async def run(self, consumers: dict[str, str]) -> None:
        """Turn MaxDeliveries advisories for ``consumers`` (durable name -> stream) into dead letters."""
        if not consumers:
            return
        durable = f"{self._service}-deadletters"
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_deliver=20,
            ack_wait=30,
            filter_subjects=[f"{MAX_DELIVERIES_ADVISORY}.{s}.{c}" for c, s in sorted(consumers.items())],
        )
        with contextlib.suppress(Exception):
            await self._js.add_consumer(ADVISORIES.name, config)
        sub = await self._js.pull_subscribe_bind(durable=durable, stream=ADVISORIES.name)
        while not self._stopped:
            try:
                msgs = await sub.fetch(batch=20, timeout=1.0)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("advisory_fetch_failed", error=type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for msg in msgs:
                try:
                    await self._on_advisory(msg)
                    await msg.ack()
                except Exception as exc:
                    log.warning("advisory_failed", error=type(exc).__name__, detail=str(exc)[:200])
                    await msg.nak(delay=2.0)

    def stop(self) -> None:
        self._stopped = True

    async def _on_advisory(self, msg: Msg) -> None:
        advisory = orjson.loads(msg.data)
        stream, consumer, seq = advisory["stream"], advisory["consumer"], int(advisory["stream_seq"])
        try:
            original = await self._js.get_msg(stream, seq)
        except NotFoundError:
            log.warning("dead_letter_source_gone", stream=stream, stream_seq=seq, consumer=consumer)
            return
        async with self._sessions() as session:
            reason = (
                await session.execute(
                    select(self._failures.c.error).where(
                        self._failures.c.consumer == consumer, self._failures.c.stream_seq == seq
                    )
                )
            ).scalar_one_or_none()
        await self.publish(
            consumer=consumer,
            stream=stream,
            stream_seq=seq,
            subject=original.subject or "",
            headers=original.headers,
            body=original.data or b"",
            reason=reason or "delivery limit reached (no error was recorded)",
            deliveries=int(advisory.get("deliveries", 0)),
        )


async def list_dead_letters(js: JetStreamContext, limit: int = 1000) -> list[DeadLetter]:
    """Every dead letter still in the DLQ stream, oldest first."""
    info = await js.stream_info(DLQ.name)
    out: list[DeadLetter] = []
    if not info.state.messages:
        return []
    first, last = max(info.state.first_seq, 1), info.state.last_seq
    for seq in range(first, last + 1):
        if len(out) >= limit:
            break
        letter = await get_dead_letter(js, seq)
        if letter is not None:
            out.append(letter)
    return out


async def get_dead_letter(js: JetStreamContext, seq: int) -> DeadLetter | None:
    try:
        raw = await js.get_msg(DLQ.name, seq)
    except NotFoundError:
        return None
    return DeadLetter.from_headers(seq, raw.subject or "", dict(raw.headers or {}), raw.data or b"")


async def replay_dead_letter(js: JetStreamContext, seq: int) -> str:
    """Re-publish a dead letter to its original subject; returns that subject.

    The event keeps its ``ce-id`` (consumers that applied it skip it again) but gets a fresh
    ``Nats-Msg-Id`` so the server's duplicate window does not drop the replay.
    """
    letter = await get_dead_letter(js, seq)
    if letter is None:
        raise LookupError(f"no dead letter with sequence {seq}")
    headers = letter.original_headers()
    headers["Nats-Msg-Id"] = f"{headers.get('ce-id', 'unknown')}:replay:{seq}:{datetime.now(UTC).timestamp()}"
    await js.publish(letter.original_subject, letter.body, headers=headers)
    return letter.original_subject
