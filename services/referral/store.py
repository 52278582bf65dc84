"""Referral's tables: the partner directory (HSDS-shaped), what it knows of cases, the referrals
with their loop state, partners' progress notes, and the audit of partners' reads of her details."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Column, Text, delete, func, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, select

from services.referral.directory import Organization
from services.referral.domain import CaseFacts
from services.referral.loop import OPEN_STATES, Referral, ReferralStatus
from services.referral.matching import PartnerService
from shared.db import UtcDateTime
from shared.events import NeedPriority
from shared.vocab import ServiceCategory


class ReferralModel(SQLModel, registry=registry()):
    """Base of referral's tables: its own metadata."""


def _csv(values: Iterable[str]) -> str:
    return ",".join(values)


def _split(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


# -- directory ---------------------------------------------------------------------------------------


class PartnerOrgRow(ReferralModel, table=True):
    __tablename__ = "partner_organizations"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=300)
    status: str = Field(max_length=32)
    provinces: str = Field(max_length=400)  # comma-separated post-2025 codes
    categories: str = Field(max_length=200)  # comma-separated
    doc: str = Field(sa_column=Column(Text, nullable=False))  # the Organization as JSON
    updated_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))

    def to_domain(self) -> Organization:
        return Organization.model_validate_json(self.doc)


class PartnerServiceRow(ReferralModel, table=True):
    __tablename__ = "partner_services"

    id: str = Field(primary_key=True, max_length=64)
    partner_id: str = Field(index=True, max_length=64)
    category: str = Field(index=True, max_length=32)
    taxonomy_term: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=32)
    women_only: bool = False
    accepts_children: bool = True
    languages: str = Field(default="vi", max_length=100)
    capacity: int | None = None


class ServiceAreaRow(ReferralModel, table=True):
    __tablename__ = "partner_service_areas"

    id: int | None = Field(default=None, primary_key=True)
    service_id: str = Field(index=True, max_length=64)
    province: str | None = Field(default=None, index=True, max_length=2)  # set for a whole province
    ward: str | None = Field(default=None, index=True, max_length=5)  # set for one ward


async def save_organization(session: AsyncSession, org: Organization, at: datetime) -> bool:
    """Insert or replace a partner and its services; returns True when it is new."""
    existing = await session.get(PartnerOrgRow, org.id)
    old_services = (
        (await session.execute(select(PartnerServiceRow.id).where(PartnerServiceRow.partner_id == org.id)))
        .scalars()
        .all()
    )
    if old_services:
        await session.execute(delete(ServiceAreaRow).where(ServiceAreaRow.service_id.in_(old_services)))  # type: ignore[attr-defined]
        await session.execute(delete(PartnerServiceRow).where(PartnerServiceRow.partner_id == org.id))  # type: ignore[arg-type]
    values: dict[str, Any] = {
        "name": org.name,
        "status": org.status,
        "provinces": _csv(org.provinces),
        "categories": _csv(c.value for c in org.categories),
        "doc": org.model_dump_json(),
        "updated_at": at,
    }
    if existing is None:
        session.add(PartnerOrgRow(id=org.id, **values))
    else:
        for key, value in values.items():
            setattr(existing, key, value)
    for s in org.matching_services():
        session.add(
            PartnerServiceRow(
                id=s.service_id,
                partner_id=org.id,
                category=s.category.value,
                taxonomy_term=s.taxonomy_term,
                status=s.status,
                women_only=s.women_only,
                accepts_children=s.accepts_children,
                languages=_csv(sorted(s.languages)),
                capacity=s.capacity,
            )
        )
        for p in sorted(s.provinces):
            session.add(ServiceAreaRow(service_id=s.service_id, province=p))
        for w in sorted(s.wards):
            session.add(ServiceAreaRow(service_id=s.service_id, ward=w))
    await session.flush()
    return existing is None


async def organizations(session: AsyncSession, province: str | None = None) -> list[Organization]:
    query = select(PartnerOrgRow).order_by(PartnerOrgRow.id)  # type: ignore[arg-type]
    rows = (await session.execute(query)).scalars().all()
    orgs = [r.to_domain() for r in rows]
    return [o for o in orgs if province is None or province in o.provinces]


async def candidate_services(
    session: AsyncSession, category: ServiceCategory, province: str, ward: str | None
) -> list[PartnerService]:
    """Services of ``category`` serving her province or ward (the index does the first cut;
    matching checks the rest)."""
    area: Any = ServiceAreaRow.province == province
    if ward:
        area = or_(area, ServiceAreaRow.ward == ward)  # type: ignore[arg-type]
    ids = select(ServiceAreaRow.service_id).where(area)
    rows = (
        (
            await session.execute(
                select(PartnerServiceRow).where(
                    PartnerServiceRow.category == category.value,
                    PartnerServiceRow.id.in_(ids),  # type: ignore[attr-defined]
                )
            )
        )
        .scalars()
        .all()
    )
    if not rows:
        return []
    areas = (
        (
            await session.execute(
                select(ServiceAreaRow).where(
                    ServiceAreaRow.service_id.in_([r.id for r in rows])  # type: ignore[attr-defined]
                )
            )
        )
        .scalars()
        .all()
    )
    provinces: dict[str, set[str]] = {r.id: set() for r in rows}
    wards: dict[str, set[str]] = {r.id: set() for r in rows}
    for a in areas:
        if a.province:
            provinces[a.service_id].add(a.province)
        if a.ward:
            wards[a.service_id].add(a.ward)
    return [
        PartnerService(
            service_id=r.id,
            partner_id=r.partner_id,
            category=ServiceCategory(r.category),
            provinces=frozenset(provinces[r.id]),
            wards=frozenset(wards[r.id]),
            taxonomy_term=r.taxonomy_term,
            status=r.status,
            women_only=r.women_only,
            accepts_children=r.accepts_children,
            languages=frozenset(_split(r.languages)),
            capacity=r.capacity,
        )
        for r in rows
    ]


async def open_load(session: AsyncSession, service_ids: Iterable[str]) -> dict[str, int]:
    """Open referrals per service id."""
    ids = list(service_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(ReferralTaskRow.service_id, func.count())
        .where(
            ReferralTaskRow.service_id.in_(ids),  # type: ignore[union-attr,attr-defined]
            ReferralTaskRow.status.in_([s.value for s in OPEN_STATES]),  # type: ignore[attr-defined]
        )
        .group_by(ReferralTaskRow.service_id)
    )
    return {sid: int(n) for sid, n in rows.all() if sid}


# -- cases -------------------------------------------------------------------------------------------


class CaseRow(ReferralModel, table=True):
    """What referral knows of a case, from case events: codes and flags only."""

    __tablename__ = "referral_cases"

    case_id: str = Field(primary_key=True, max_length=64)
    province: str = Field(max_length=2)
    ward: str | None = Field(default=None, max_length=5)
    status: str = Field(default="open", max_length=16)  # open, active, closed, erased
    consent_referral: bool = False
    referral_categories: str | None = Field(default=None, max_length=200)  # None: every category
    language: str = Field(default="vi", max_length=5)
    with_children: bool = False
    do_not_contact: bool = False
    #: The caseworker's setting: re-route an overdue referral to the next-best partner (None: default).
    auto_reroute: bool | None = None
    updated_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))

    def facts(self) -> CaseFacts:
        cats = (
            frozenset(ServiceCategory(c) for c in _split(self.referral_categories))
            if self.referral_categories is not None
            else None
        )
        return CaseFacts(
            case_id=self.case_id,
            province=self.province,
            ward=self.ward,
            consent_referral=self.consent_referral,
            referral_categories=cats,
            language=self.language,
            with_children=self.with_children,
            status=self.status,
        )


def categories_csv(categories: Iterable[ServiceCategory] | None) -> str | None:
    return None if categories is None else _csv(sorted(c.value for c in categories))


# -- referrals ---------------------------------------------------------------------------------------


class ReferralTaskRow(ReferralModel, table=True):
    """One referral and where it is in the loop (a FHIR ``Task``)."""

    __tablename__ = "referral_tasks"

    id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(index=True, max_length=64)
    partner_id: str = Field(index=True, max_length=64)
    service_id: str | None = Field(default=None, index=True, max_length=64)
    province: str = Field(index=True, max_length=2)
    category: str = Field(max_length=32)
    taxonomy_term: str | None = Field(default=None, max_length=64)
    priority: str = Field(default="normal", max_length=16)
    status: str = Field(index=True, max_length=16)
    requested_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    accept_by: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    complete_by: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    held_from: str | None = Field(default=None, max_length=16)
    overdue_acceptance: bool = False
    overdue_completion: bool = False
    manual: bool = False
    rerouted_from: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=64)
    outcome: str | None = Field(default=None, max_length=64)

    @staticmethod
    def _values(r: Referral) -> dict[str, Any]:
        return {
            "case_id": r.case_id,
            "partner_id": r.partner_id,
            "service_id": r.service_id,
            "province": r.province,
            "category": r.category.value,
            "taxonomy_term": r.taxonomy_term,
            "priority": r.priority.value,
            "status": r.status.value,
            "requested_at": r.requested_at,
            "updated_at": r.updated_at or r.requested_at,
            "accept_by": r.accept_by,
            "complete_by": r.complete_by,
            "held_from": r.held_from.value if r.held_from else None,
            "overdue_acceptance": r.overdue_acceptance,
            "overdue_completion": r.overdue_completion,
            "manual": r.manual,
            "rerouted_from": r.rerouted_from,
            "reason": r.reason,
            "outcome": r.outcome,
        }

    @classmethod
    def from_domain(cls, r: Referral) -> ReferralTaskRow:
        return cls(id=r.id, **cls._values(r))

    def update_from(self, r: Referral) -> None:
        for key, value in self._values(r).items():
            setattr(self, key, value)

    def to_domain(self) -> Referral:
        return Referral(
            id=self.id,
            case_id=self.case_id,
            partner_id=self.partner_id,
            province=self.province,
            category=ServiceCategory(self.category),
            requested_at=self.requested_at,
            status=ReferralStatus(self.status),
            service_id=self.service_id,
            taxonomy_term=self.taxonomy_term,
            priority=NeedPriority(self.priority),
            accept_by=self.accept_by,
            complete_by=self.complete_by,
            held_from=ReferralStatus(self.held_from) if self.held_from else None,
            overdue_acceptance=self.overdue_acceptance,
            overdue_completion=self.overdue_completion,
            manual=self.manual,
            rerouted_from=self.rerouted_from,
            reason=self.reason,
            outcome=self.outcome,
            updated_at=self.updated_at,
        )


class ReferralNoteRow(ReferralModel, table=True):
    """A partner's progress note; stays here, never on the bus."""

    __tablename__ = "referral_notes"

    id: int | None = Field(default=None, primary_key=True)
    referral_id: str = Field(index=True, max_length=64)
    at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    by: str = Field(max_length=100)
    text: str = Field(sa_column=Column(Text, nullable=False))


class DetailsAccessRow(ReferralModel, table=True):
    """Audit: a partner asked for her consented details of one referral."""

    __tablename__ = "referral_details_access"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    actor: str = Field(max_length=100)
    referral_id: str = Field(index=True, max_length=64)
    case_id: str = Field(max_length=64)
    fields: str = Field(default="", max_length=300)  # names of the fields returned, never values
    result: str = Field(max_length=32)


async def open_referrals(session: AsyncSession, case_id: str) -> list[ReferralTaskRow]:
    query = select(ReferralTaskRow).where(
        ReferralTaskRow.case_id == case_id,
        ReferralTaskRow.status.in_([s.value for s in OPEN_STATES]),  # type: ignore[attr-defined]
    )
    return list((await session.execute(query.order_by(ReferralTaskRow.requested_at))).scalars().all())  # type: ignore[arg-type]


async def referrals_of_case(session: AsyncSession, case_id: str) -> list[ReferralTaskRow]:
    query = select(ReferralTaskRow).where(ReferralTaskRow.case_id == case_id)
    return list((await session.execute(query.order_by(ReferralTaskRow.requested_at))).scalars().all())  # type: ignore[arg-type]


def dumps(value: object) -> str:
    return orjson.dumps(value).decode()


metadata = ReferralModel.metadata
