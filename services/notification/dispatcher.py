"""Sends due messages. A due message is a database row, claimed with a lease so that replicas
never send the same one twice and a crashed replica's claims run out and are taken over."""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import or_, update
from sqlmodel import col, select

from services.notification.domain import render
from services.notification.providers import SmsProvider
from services.notification.settings import NotificationSettings
from services.notification.store import ContactProfileRow, FollowUpRow
from shared.events import MessageSent, NotificationEvent
from shared.logs import get_logger
from shared.runtime import Runtime
from shared.sms import encode_info

log = get_logger(__name__)


@dataclass(frozen=True)
class Contact:
    phone: str | None
    sms_consent: bool
    status: str


class IntakeContacts:
    """Reads her phone from intake at send time (authenticated; intake audits every read)."""

    def __init__(self, base_url: str, token: str) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=5.0,
            headers={"Authorization": f"Bearer {token}", "X-Osso-Service": "notification"},
        )

    async def get(self, case_id: str, purpose: str) -> Contact | None:
        r = await self._client.get(f"/internal/v1/cases/{case_id}/contact", params={"purpose": purpose})
        if r.status_code in (404, 410):
            return None
        r.raise_for_status()
        body = r.json()
        return Contact(body.get("phone"), bool(body.get("sms_consent")), body.get("status", ""))

    async def close(self) -> None:
        await self._client.aclose()


class Dispatcher:
    def __init__(
        self, rt: Runtime, settings: NotificationSettings, provider: SmsProvider, contacts: IntakeContacts
    ) -> None:
        self.rt = rt
        self.settings = settings
        self.provider = provider
        self.contacts = contacts
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    async def run(self) -> None:
        while True:
            try:
                sent = await self.dispatch_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("dispatch_failed", error=type(exc).__name__, detail=str(exc)[:200])
                sent = 0
            if not sent:
                await asyncio.sleep(self.settings.dispatch_interval)

    async def claim(self, now: datetime, limit: int = 50) -> list[FollowUpRow]:
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        async with self.rt.sessions() as session, session.begin():
            due = (
                select(FollowUpRow.id)
                .where(FollowUpRow.status == "scheduled", col(FollowUpRow.due_at) <= now)
                .where(or_(col(FollowUpRow.lease_until).is_(None), col(FollowUpRow.lease_until) < now))
                .order_by(col(FollowUpRow.due_at))
                .limit(limit)
            )
            ids = list((await session.execute(due)).scalars().all())
            if not ids:
                return []
            await session.execute(
                update(FollowUpRow)
                .where(col(FollowUpRow.id).in_(ids))
                .where(or_(col(FollowUpRow.lease_until).is_(None), col(FollowUpRow.lease_until) < now))
                .values(claimed_by=self.worker, lease_until=lease_until)
            )
            rows = (
                (
                    await session.execute(
                        select(FollowUpRow).where(
                            col(FollowUpRow.id).in_(ids),
                            FollowUpRow.claimed_by == self.worker,
                            FollowUpRow.lease_until == lease_until,
                        )
                    )
                )
                .scalars()
                .all()
            )
        return list(rows)

    async def dispatch_due(self) -> int:
        claimed = await self.claim(datetime.now(UTC))
        for row in claimed:
            try:
                await self._send_one(row)
            except Exception as exc:
                await self._retry_later(row, exc)
        return len(claimed)

    async def _retry_later(self, row: FollowUpRow, exc: Exception) -> None:
        """Keep the message scheduled; try again after a backoff that grows with each attempt."""
        log.warning("send_failed", message_id=row.id, error=type(exc).__name__, attempt=row.attempts + 1)
        backoff = min(5.0 * 2**row.attempts, 3600.0)
        async with self.rt.sessions() as session, session.begin():
            await session.execute(
                update(FollowUpRow)
                .where(col(FollowUpRow.id) == row.id, col(FollowUpRow.claimed_by) == self.worker)
                .values(
                    attempts=row.attempts + 1,
                    last_error=type(exc).__name__,
                    lease_until=datetime.now(UTC) + timedelta(seconds=backoff),
                )
            )

    async def _send_one(self, row: FollowUpRow) -> None:
        contact = await self.contacts.get(row.case_id, purpose="sms_follow_up")
        async with self.rt.uow() as uow:
            current = await uow.session.get(FollowUpRow, row.id)
            if current is None or current.status != "scheduled" or current.claimed_by != self.worker:
                return  # cancelled meanwhile, or our lease ran out and another replica took it
            profile = await uow.session.get(ContactProfileRow, row.case_id)
            if contact is None or not contact.phone or not contact.sms_consent:
                current.status = "cancelled"
                current.last_error = "no consented phone for this case"
                await uow.commit()
                return
            text = render(row.template, profile.language if profile else "vi")
            await self.provider.send(
                message_id=row.id, to=contact.phone, sender=self.settings.sender_name, text=text
            )
            now = datetime.now(UTC)
            info = encode_info(text)
            current.status = "sent"
            current.sent_at = now
            current.segments = info.segments
            current.attempts += 1
            event: NotificationEvent = MessageSent(
                message_id=row.id,
                case_id=row.case_id,
                province=row.province,
                segments=info.segments,
                sent_at=now,
            )
            uow.emit(event)
            await uow.commit()
