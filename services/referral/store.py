"""Referral's tables: the partner directory and the referrals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, select

from services.referral.domain import Partner, Referral
from shared.db import UtcDateTime
from shared.vocab import ServiceCategory


class ReferralModel(SQLModel, registry=registry()):
    """Base of referral's tables: its own metadata."""


class PartnerRow(ReferralModel, table=True):
    __tablename__ = "partners"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=300)
    province: str = Field(index=True, max_length=2)
    categories: str = Field(max_length=200)  # comma-separated
    active: bool = True

    def to_domain(self) -> Partner:
        cats = frozenset(ServiceCategory(c) for c in self.categories.split(",") if c)
        return Partner(self.id, self.name, self.province, cats, self.active)


class ReferralRow(ReferralModel, table=True):
    __tablename__ = "referrals"

    id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(index=True, max_length=64)
    partner_id: str = Field(index=True, max_length=64)
    province: str = Field(max_length=2)
    category: str = Field(max_length=32)
    status: str = Field(max_length=16)
    requested_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))

    @classmethod
    def from_domain(cls, r: Referral) -> ReferralRow:
        return cls(
            id=r.id,
            case_id=r.case_id,
            partner_id=r.partner_id,
            province=r.province,
            category=r.category.value,
            status=r.status,
            requested_at=r.requested_at,
        )


metadata = ReferralModel.metadata


async def partners_in(session: AsyncSession, province: str) -> list[Partner]:
    rows = (await session.execute(select(PartnerRow).where(PartnerRow.province == province))).scalars().all()
    return [r.to_domain() for r in rows]
