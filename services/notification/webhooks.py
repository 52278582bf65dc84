"""The provider's webhooks: delivery receipts and her replies.

Both are authenticated with an HMAC-SHA256 of the raw body under a shared secret
(``X-Osso-Signature: sha256=<hex>``) and idempotent: a receipt id or inbound message id handled
once is answered ``duplicate`` ever after. Her reply names her only by phone number: it is matched
to her case through the keyed hash of the number kept per sent message, never stored in clear.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from services.notification.dispatcher import PHONE_HASH_PURPOSE
from services.notification.domain import DELIVERED, FAILED, SENDING, SENT, Reason, is_opt_out
from services.notification.handlers import cancel_pending
from services.notification.store import ContactProfileRow, FollowUpRow, WebhookCallRow
from shared.crypto import BlindIndex
from shared.events import ContactChannel, MessageDelivered, MessageFailed, OptedOut
from shared.http import ProblemError
from shared.logs import get_logger
from shared.phones import InvalidPhone, to_e164
from shared.runtime import Runtime

if TYPE_CHECKING:
    from services.notification.api import InboundIn, ReceiptIn

log = get_logger(__name__)
SIGNATURE_HEADER = "x-osso-signature"


class BadSignature(ProblemError):
    status = 401
    title = "Unauthorized"


class NotYetSent(ProblemError):
    status = 409
    title = "Not yet recorded as sent"


class InvalidSender(ProblemError):
    status = 422
    title = "Invalid request"


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookAuth:
    def __init__(self, secret: str) -> None:
        if len(secret) < 16:
            raise ValueError("the webhook secret must have at least 16 characters")
        self._secret = secret

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        given = headers.get(SIGNATURE_HEADER, "")
        if not given or not hmac.compare_digest(given.strip().lower(), sign(self._secret, body)):
            raise BadSignature(f"missing or wrong {SIGNATURE_HEADER} (HMAC-SHA256 of the body)")

    def __repr__(self) -> str:
        return "WebhookAuth(<secret hidden>)"


async def _first_time(session: Any, kind: str, external_id: str, at: datetime, outcome: str) -> bool:
    """Record a webhook call; False if it was handled before (by us or by a replica just now)."""
    if await session.get(WebhookCallRow, (kind, external_id)) is not None:
        return False
    session.add(WebhookCallRow(kind=kind, external_id=external_id, received_at=at, outcome=outcome))
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        return False
    return True


async def handle_receipt(rt: Runtime, receipt: ReceiptIn, now: datetime) -> str:
    """Apply one delivery receipt; returns what happened (``delivered``, ``failed``, ``duplicate``...)."""
    async with rt.uow() as uow:
        q = select(FollowUpRow)
        if receipt.message_id:
            q = q.where(FollowUpRow.id == receipt.message_id)
        else:
            q = q.where(FollowUpRow.provider_message_id == receipt.provider_message_id)
        row = (await uow.session.execute(q)).scalars().first()
        if row is not None and row.status == SENDING:
            # The provider was faster than our own record of the send: ask it to post again.
            raise NotYetSent("the message is still being recorded as sent; retry the receipt")
        outcome: str = "unknown_message" if row is None else receipt.status
        if row is not None and row.status != SENT:
            outcome = "ignored"  # already delivered, failed or cancelled
        if not await _first_time(uow.session, "receipt", receipt.receipt_id, now, outcome):
            return "duplicate"
        if row is not None and outcome in (DELIVERED, FAILED):
            at = receipt.at or now
            ids = {"message_id": row.id, "case_id": row.case_id, "province": row.province}
            if outcome == DELIVERED:
                row.status, row.delivered_at = DELIVERED, at
                uow.emit(MessageDelivered(**ids, at=at))
            else:
                row.status, row.reason = FAILED, receipt.reason or "undelivered"
                uow.emit(MessageFailed(**ids, reason=row.reason, at=at))
        await uow.commit()
    return outcome


async def handle_inbound(
    rt: Runtime, phone_index: BlindIndex, message: InboundIn, now: datetime
) -> dict[str, Any]:
    """Her reply: an opt-out keyword cancels every pending message of her case(s) and emits
    ``OptedOut`` (intake withdraws her SMS consent). The text itself is not kept."""
    try:
        e164 = to_e164(message.sender)
    except InvalidPhone as exc:
        raise InvalidSender(f"from: {exc}") from None
    opt_out = is_opt_out(message.text)
    async with rt.uow() as uow:
        case_ids: list[str] = []
        if opt_out:
            digest = phone_index.digest(e164, PHONE_HASH_PURPOSE)
            case_ids = sorted(
                set(
                    (
                        await uow.session.execute(
                            select(FollowUpRow.case_id).where(col(FollowUpRow.phone_hash) == digest)
                        )
                    ).scalars()
                )
            )
        outcome = ("opted_out" if case_ids else "unknown_sender") if opt_out else "ignored"
        if not await _first_time(uow.session, "inbound", message.id, now, outcome):
            return {"status": "duplicate"}
        at = message.at or now
        for case_id in case_ids:
            profile = await uow.session.get(ContactProfileRow, case_id)
            if profile is None or profile.erased:
                continue
            profile.sms_consent = False
            cancelled = await cancel_pending(uow, Reason.OPTED_OUT, now, case_id=case_id)
            uow.emit(OptedOut(case_id=case_id, province=profile.province, channel=ContactChannel.SMS, at=at))
            log.info("opted_out", case_id=case_id, cancelled=cancelled)
        await uow.commit()
    return {"status": outcome, "cases": len(case_ids)}
