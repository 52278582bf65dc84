"""Referral's HTTP routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlmodel import select

from services.referral.store import PartnerRow, ReferralRow
from shared.auth import PROVINCE_ROLES, Principal, Role, require
from shared.runtime import Runtime
from shared.vocab import ServiceCategory


class ReferralOut(BaseModel):
    id: str
    case_id: str
    partner_id: str
    province: str
    category: ServiceCategory
    status: str
    requested_at: datetime


class PartnerOut(BaseModel):
    id: str
    name: str
    province: str
    categories: list[ServiceCategory]
    active: bool


READERS = require(Role.CASEWORKER, Role.SUPERVISOR, Role.CENTRAL_ADMIN, Role.PARTNER)


def build_router(rt: Runtime) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/referrals", response_model=list[ReferralOut], tags=["referrals"])
    async def list_referrals(
        who: Annotated[Principal, Depends(READERS)],
        partner_id: str | None = Query(default=None, max_length=64),
        case_id: str | None = Query(default=None, max_length=64),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> list[ReferralOut]:
        query = select(ReferralRow).order_by(ReferralRow.requested_at).limit(limit)  # type: ignore[arg-type]
        if who.role is Role.PARTNER:
            partner_id = who.partner_id  # a partner sees its own referrals, whatever it asks for
        elif who.role in PROVINCE_ROLES:
            query = query.where(ReferralRow.province == who.province)
        if partner_id:
            query = query.where(ReferralRow.partner_id == partner_id)
        if case_id:
            query = query.where(ReferralRow.case_id == case_id)
        async with rt.sessions() as session:
            rows = (await session.execute(query)).scalars().all()
        return [ReferralOut.model_validate(r, from_attributes=True) for r in rows]

    @router.get("/v1/partners", response_model=list[PartnerOut], tags=["partners"])
    async def list_partners(
        province: str | None = Query(default=None, pattern=r"^\d{2}$"),
    ) -> list[PartnerOut]:
        query = select(PartnerRow).order_by(PartnerRow.id)  # type: ignore[arg-type]
        if province:
            query = query.where(PartnerRow.province == province)
        async with rt.sessions() as session:
            rows = (await session.execute(query)).scalars().all()
        return [
            PartnerOut(
                id=r.id,
                name=r.name,
                province=r.province,
                categories=[ServiceCategory(c) for c in r.categories.split(",") if c],
                active=r.active,
            )
            for r in rows
        ]

    return router
