"""Sends due messages. A due message is a database row, not a timer in memory.

A dispatcher claims a batch of due rows in one transaction (``SELECT ... FOR UPDATE SKIP LOCKED``
on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers) and marks them ``sending`` with a
lease, so replicas never take the same row. Each message goes to the provider with its id as the
idempotency key; the outcomes of the batch are recorded in one transaction with their events. A
replica that crashes after the provider accepted a message but before recording it leaves the row
``sending``; when the lease runs out another dispatcher re-sends it with the same key, and the
provider recognises it instead of sending it twice.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import and_, bindparam, or_, update
from sqlmodel import col, select

from services.notification.domain import (
    CANCELLED,
    FAILED,
    SCHEDULED,
    SENDING,
    SENT,
    ContactProfile,
    Reason,
    SafeHours,
    appointment_text,
)
from services.notification.providers import (
    CircuitOpen,
    ProviderRejected,
    ProviderUnavailable,
    SendResult,
    SmsProvider,
)
from services.notification.settings import NotificationSettings
from services.notification.store import ContactProfileRow, FollowUpRow
from services.notification.templates import Templates
from shared.crypto import BlindIndex
from shared.events import Event, MessageCancelled, MessageFailed, MessageSent
from shared.logs import get_logger
from shared.phones import InvalidPhone, to_e164
from shared.runtime import Runtime
from shared.sms import encode_info
from shared.vntext import unaccent

log = get_logger(__name__)

Clock = Callable[[], datetime]
PHONE_HASH_PURPOSE = "notification:phone"
_E164 = re.compile(r"\+[1-9]\d{7,14}")


def system_clock(offset: float = 0.0) -> Clock:
    """Now (UTC), shifted by ``offset`` seconds (tests drive quiet hours of real processes with it)."""
    delta = timedelta(seconds=offset)
    return lambda: datetime.now(UTC) + delta


@dataclass(frozen=True)
class Contact:
    phone: str | None
    sms_consent: bool
    status: str


class CaseGone(Exception):
    """Intake answered 404 (no such case) or 410 (erased): she is never messaged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ContactSource:
    """Where her number comes from at send time."""

    async def get(self, case_id: str, purpose: str) -> Contact:  # pragma: no cover - interface
        raise NotImplementedError

    async def close(self) -> None:
        return None


class IntakeContacts(ContactSource):
    """Reads her phone from intake at send time (service token; intake audits every read)."""

    def __init__(self, base_url: str, token: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=5.0,
            headers={"Authorization": f"Bearer {token}", "X-Osso-Service": "notification"},
            transport=transport,
        )

    async def get(self, case_id: str, purpose: str) -> Contact:
        r = await self._client.get(f"/internal/v1/cases/{case_id}/contact", params={"purpose": purpose})
        if r.status_code == 404:
            raise CaseGone(Reason.CASE_UNKNOWN)
        if r.status_code == 410:
            raise CaseGone(Reason.CASE_ERASED)
        r.raise_for_status()
        body = r.json()
        return Contact(body.get("phone"), bool(body.get("sms_consent")), str(body.get("status") or ""))

    async def close(self) -> None:
        await self._client.aclose()


# -- what happened to one claimed message ---------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    result: SendResult
    segments: int
    encoding: str
    phone_hash: str | None


@dataclass(frozen=True)
class Cancel:
    reason: str


@dataclass(frozen=True)
class Fail:
    reason: str


@dataclass(frozen=True)
class Defer:
    until: datetime
    error: str | None = None  # set when this was a failed attempt (counts towards max_attempts)


Outcome = Sent | Cancel | Fail | Defer


class Dispatcher:
    def __init__(
        self,
        rt: Runtime,
        settings: NotificationSettings,
        provider: SmsProvider,
        contacts: ContactSource,
        templates: Templates,
        phone_index: BlindIndex,
        clock: Clock | None = None,
        worker: str | None = None,
    ) -> None:
        self.rt = rt
        self.settings = settings
        self.provider = provider
        self.contacts = contacts
        self.templates = templates
        self.phone_index = phone_index
        self.clock = clock or system_clock(settings.clock_offset)
        self.worker = worker or f"{socket.gethostname()[:40]}:{os.getpid()}"
        self.tz = ZoneInfo(settings.timezone)
        self._postgres = rt.database_url.startswith("postgresql")
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due messages now rather than at the next interval."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    claimed = await self.dispatch_due()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("dispatch_failed", error=type(exc).__name__, detail=str(exc)[:200])
                    claimed = 0
                if claimed < self.settings.dispatch_batch:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.settings.dispatch_interval)
                    except TimeoutError:
                        pass
        finally:
            await self.provider.close()
            await self.contacts.close()

    # -- claiming ------------------------------------------------------------------------------------
    async def claim(self, now: datetime, limit: int | None = None) -> list[FollowUpRow]:
        """Take up to ``limit`` due messages (and ones whose sender crashed) for this worker."""
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        async with self.rt.sessions() as session, session.begin():
            due = (
                select(FollowUpRow)
                .where(
                    or_(
                        and_(col(FollowUpRow.status) == SCHEDULED, col(FollowUpRow.due_at) <= now),
                        and_(col(FollowUpRow.status) == SENDING, col(FollowUpRow.lease_until) < now),
                    )
                )
                .order_by(col(FollowUpRow.due_at))
                .limit(limit or self.settings.dispatch_batch)
            )
            if self._postgres:
                due = due.with_for_update(skip_locked=True)
            rows = list((await session.execute(due)).scalars().all())
            if not rows:
                return []
            await session.execute(
                update(FollowUpRow)
                .where(col(FollowUpRow.id).in_([r.id for r in rows]))
                .values(status=SENDING, claimed_by=self.worker, lease_until=lease_until)
                .execution_options(synchronize_session=False)
            )
        for r in rows:
            r.status, r.claimed_by, r.lease_until = SENDING, self.worker, lease_until
        return rows

    async def dispatch_due(self) -> int:
        """Claim one batch, send it, record the outcomes; returns how many were claimed."""
        now = self.clock()
        rows = await self.claim(now)
        if not rows:
            return 0
        async with self.rt.sessions() as session:
            profiles = {
                p.case_id: p.to_domain()
                for p in (
                    await session.execute(
                        select(ContactProfileRow).where(
                            col(ContactProfileRow.case_id).in_({r.case_id for r in rows})
                        )
                    )
                ).scalars()
            }
        gate = asyncio.Semaphore(self.settings.send_concurrency)

        async def one(row: FollowUpRow) -> Outcome:
            async with gate:
                try:
                    return await self._attempt(row, profiles.get(row.case_id), now)
                except Exception as exc:  # never lose the batch over one message
                    log.warning("send_error", message_id=row.id, error=type(exc).__name__)
                    return self._backoff(row, now, type(exc).__name__)

        outcomes = await asyncio.gather(*(one(r) for r in rows))
        await self._record(list(zip(rows, outcomes, strict=True)), now)
        kinds = Counter(type(o).__name__.lower() for o in outcomes)
        log.info("batch_dispatched", worker=self.worker, claimed=len(rows), **kinds)
        return len(rows)

    # -- one message -----------------------------------------------------------------------------------
    def _backoff(self, row: FollowUpRow, now: datetime, error: str) -> Outcome:
        if row.attempts + 1 >= self.settings.max_attempts:
            return Fail(Reason.PROVIDER_UNAVAILABLE)
        return Defer(now + timedelta(seconds=min(5.0 * 2**row.attempts, 3600.0)), error=error)

    def safe_hours(self, profile: ContactProfile) -> SafeHours:
        return SafeHours.of(
            profile.safe_hours_start or self.settings.safe_hours_start,
            profile.safe_hours_end or self.settings.safe_hours_end,
            self.tz,
        )

    async def _attempt(self, row: FollowUpRow, profile: ContactProfile | None, now: datetime) -> Outcome:
        if profile is None:
            return Cancel(Reason.CASE_UNKNOWN)
        why_not = profile.why_not_contact()
        if why_not:
            return Cancel(why_not)
        if row.appointment_at is not None and row.appointment_at <= now:
            return Cancel(Reason.APPOINTMENT_PASSED)
        if self.settings.quiet_hours_enabled:
            hours = self.safe_hours(profile)
            if not hours.allows(now):
                return Defer(hours.next_allowed(now))
        try:
            contact = await self.contacts.get(row.case_id, purpose="sms_follow_up")
        except CaseGone as gone:
            return Cancel(gone.reason)
        except httpx.HTTPError as exc:
            return self._backoff(row, now, f"intake_{type(exc).__name__}")
        if not contact.sms_consent:
            return Cancel(Reason.NO_CONSENT)
        if contact.status == "closed":
            return Cancel(Reason.CASE_CLOSED)
        if not contact.phone:
            return Cancel(Reason.NO_PHONE)
        try:
            # Intake stores E.164; parse only what does not look like it already.
            phone = contact.phone if _E164.fullmatch(contact.phone) else to_e164(contact.phone)
        except InvalidPhone:
            return Cancel(Reason.NO_PHONE)
        text = self.templates.render(
            row.template,
            profile.language,
            appointment=appointment_text(row.appointment_at, profile.language, self.tz),
        )
        if self.settings.unaccented:
            text = unaccent(text)
        info = encode_info(text)
        try:
            result = await self.provider.send(
                message_id=row.id, to=phone, sender=self.settings.sender_name, text=text
            )
        except ProviderRejected as exc:
            log.warning("send_rejected", message_id=row.id, reason=exc.reason)
            return Fail(Reason.PROVIDER_REJECTED)
        except CircuitOpen as exc:
            return Defer(now + timedelta(seconds=exc.retry_after or self.settings.circuit_reset))
        except ProviderUnavailable as exc:
            log.warning("send_failed", message_id=row.id, reason=exc.reason, attempt=row.attempts + 1)
            outcome = self._backoff(row, now, exc.reason)
            if isinstance(outcome, Defer) and exc.retry_after:
                outcome = Defer(max(outcome.until, now + timedelta(seconds=exc.retry_after)), exc.reason)
            return outcome
        return Sent(result, info.segments, info.encoding, self.phone_index.digest(phone, PHONE_HASH_PURPOSE))

    # -- recording ---------------------------------------------------------------------------------------
    async def _record(self, results: Sequence[tuple[FollowUpRow, Outcome]], now: datetime) -> None:
        """Write a batch's outcomes and events in one transaction, for the rows still claimed by us."""
        t = FollowUpRow.__table__  # type: ignore[attr-defined]
        async with self.rt.uow() as uow:
            mine = select(FollowUpRow.id).where(
                col(FollowUpRow.id).in_([row.id for row, _ in results]),
                col(FollowUpRow.status) == SENDING,
                col(FollowUpRow.claimed_by) == self.worker,
            )
            if self._postgres:
                mine = mine.with_for_update()
            # A row not ours any more: our lease ran out and another dispatcher took it (it re-sends
            # with the same idempotency key, so the provider does not send twice) and records it.
            still_ours = set((await uow.session.execute(mine)).scalars())
            groups: dict[tuple[str, ...], list[dict[str, object]]] = defaultdict(list)
            events: list[Event] = []
            for row, outcome in results:
                if row.id not in still_ours:
                    continue
                values, event = self._transition(row, outcome, now)
                params = {"k_id": row.id, **{f"v_{k}": v for k, v in values.items()}}
                groups[tuple(sorted(values))].append(params)
                if event is not None:
                    events.append(event)
            for keys, rows in groups.items():
                stmt = (
                    update(t)
                    .where(t.c.id == bindparam("k_id"))
                    .values({k: bindparam(f"v_{k}", type_=t.c[k].type) for k in keys})
                )
                await uow.session.execute(stmt, rows)  # one executemany per kind of outcome
            uow.emit(*events)
            await uow.commit()

    def _transition(
        self, row: FollowUpRow, outcome: Outcome, now: datetime
    ) -> tuple[dict[str, object], Event | None]:
        release: dict[str, object] = {"claimed_by": None, "lease_until": None}
        ids = {"message_id": row.id, "case_id": row.case_id, "province": row.province}
        if isinstance(outcome, Sent):
            values = {
                **release,
                "status": SENT,
                "sent_at": now,
                "segments": outcome.segments,
                "encoding": outcome.encoding,
                "provider_message_id": outcome.result.provider_message_id,
                "phone_hash": outcome.phone_hash,
                "attempts": row.attempts + 1,
            }
            sent = MessageSent(
                **ids,
                segments=outcome.segments,
                sent_at=now,
                encoding=outcome.encoding,  # type: ignore[arg-type]
            )
            return values, sent
        if isinstance(outcome, Cancel):
            values = {**release, "status": CANCELLED, "reason": outcome.reason}
            return values, MessageCancelled(**ids, reason=outcome.reason, at=now)
        if isinstance(outcome, Fail):
            values = {**release, "status": FAILED, "reason": outcome.reason, "attempts": row.attempts + 1}
            return values, MessageFailed(**ids, reason=outcome.reason, at=now)
        values = {**release, "status": SCHEDULED, "due_at": outcome.until}
        if outcome.error is not None:
            values["attempts"] = row.attempts + 1
            values["last_error"] = outcome.error[:300]
        return values, None
