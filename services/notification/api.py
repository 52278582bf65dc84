"""Notification's HTTP routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlmodel import col, select

from services.notification.store import FollowUpRow
from shared.auth import PROVINCE_ROLES, Principal, Role, require
from shared.runtime import Runtime


class MessageOut(BaseModel):
    id: str
    case_id: str
    referral_id: str | None
    template: str
    status: str
    due_at: datetime
    sent_at: datetime | None
    segments: int | None


READERS = require(Role.CASEWORKER, Role.SUPERVISOR, Role.CENTRAL_ADMIN)


def build_router(rt: Runtime) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/messages", response_model=list[MessageOut], tags=["messages"])
    async def list_messages(
        who: Annotated[Principal, Depends(READERS)],
        case_id: str = Query(max_length=64),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> list[MessageOut]:
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

    return router
