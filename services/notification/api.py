"""Notification's HTTP routes: messages for caseworkers, webhooks for the SMS provider."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlmodel import col, select

from services.notification.store import FollowUpRow
from services.notification.webhooks import WebhookAuth, handle_inbound, handle_receipt
from shared.auth import PROVINCE_ROLES, Principal, Role, require
from shared.crypto import BlindIndex
from shared.http import ProblemError
from shared.runtime import Runtime


class MessageOut(BaseModel):
    id: str
    case_id: str
    referral_id: str | None
    plan: str | None = None
    template: str
    status: str
    reason: str | None = None
    due_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None = None
    segments: int | None
    encoding: str | None = None
    attempts: int = 0


class ReceiptIn(BaseModel):
    """A delivery receipt from the provider."""

    model_config = ConfigDict(extra="ignore")

    receipt_id: str = Field(min_length=1, max_length=128)
    #: Our message id (the idempotency key we sent) or the provider's id for it.
    message_id: str | None = Field(default=None, max_length=64)
    provider_message_id: str | None = Field(default=None, max_length=128)
    status: Literal["delivered", "failed"]
    reason: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,64}$")
    at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _names_a_message(self) -> ReceiptIn:
        if not self.message_id and not self.provider_message_id:
            raise ValueError("message_id or provider_message_id is required")
        return self


class InboundIn(BaseModel):
    """A reply she sent to our sender number."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(min_length=1, max_length=128)
    sender: str = Field(alias="from", min_length=1, max_length=32)
    text: str = Field(max_length=1600)
    at: AwareDatetime | None = None


class InvalidRequest(ProblemError):
    status = 422
    title = "Invalid request"


READERS = require(Role.CASEWORKER, Role.SUPERVISOR, Role.CENTRAL_ADMIN)


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        # Name the field, never echo the value (a phone number may be in it).
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]} for e in exc.errors()
        ]
        raise InvalidRequest(
            "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors
        ) from None


def build_router(
    rt: Runtime, webhook_auth: WebhookAuth, phone_index: BlindIndex, clock: Callable[[], datetime]
) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/messages", response_model=list[MessageOut], tags=["messages"])
    async def list_messages(
        who: Annotated[Principal, Depends(READERS)],
        case_id: str = Query(max_length=64),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> list[MessageOut]:
        """Her messages (scheduled, sent, delivered, failed, cancelled with the reason code)."""
        query = (
            select(FollowUpRow)
            .where(FollowUpRow.case_id == case_id)
            .order_by(col(FollowUpRow.due_at))
            .limit(limit)
        )
        if who.role in PROVINCE_ROLES:
            query = query.where(FollowUpRow.province == who.province)
        async with rt.sessions() as session:
            rows = (await session.execute(query)).scalars().all()
        return [MessageOut.model_validate(r, from_attributes=True) for r in rows]

    @router.post("/v1/receipts", tags=["webhooks"])
    async def receipts(request: Request) -> dict[str, str]:
        """Delivery receipt (HMAC-signed body): ``delivered`` or ``failed``; idempotent by receipt id."""
        body = await request.body()
        webhook_auth.verify(body, request.headers)
        receipt = _parse(ReceiptIn, body)
        return {"status": await handle_receipt(rt, receipt, clock())}

    @router.post("/v1/inbound", tags=["webhooks"])
    async def inbound(request: Request) -> dict[str, Any]:
        """A reply (HMAC-signed body); an opt-out keyword cancels her pending messages at once."""
        body = await request.body()
        webhook_auth.verify(body, request.headers)
        message = _parse(InboundIn, body)
        return await handle_inbound(rt, phone_index, message, clock())

    return router
