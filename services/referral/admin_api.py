"""The partner directory over HTTP: anyone authenticated reads it; central_admin changes it, and
every change is a ``PartnerChanged`` event. HSDS 3.0 import (all or nothing) and export."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, ConfigDict

from services.referral import hsds
from services.referral.directory import Directory, DirectoryError, Organization
from services.referral.store import PartnerOrgRow, organizations, save_organization
from shared.auth import Principal, Role, require
from shared.events import PartnerChanged
from shared.http import ProblemError
from shared.runtime import Runtime
from shared.uow import UnitOfWork
from shared.vocab import ServiceCategory


class PartnerNotFound(ProblemError):
    status = 404
    title = "Not Found"


class InvalidDirectory(ProblemError):
    status = 422
    title = "Invalid directory file"


class PartnerOut(BaseModel):
    id: str
    name: str
    province: str  # the first province it serves (the walking skeleton's field)
    provinces: list[str]
    categories: list[ServiceCategory]
    active: bool
    status: str


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["active", "inactive", "temporarily_closed"]


class ImportOut(BaseModel):
    created: int
    updated: int


ADMIN = require(Role.CENTRAL_ADMIN)


def changed(
    org: Organization, change: Literal["created", "updated", "deactivated"], at: datetime
) -> PartnerChanged:
    return PartnerChanged(
        partner_id=org.id,
        change=change,
        status=org.status,  # type: ignore[arg-type]
        provinces=org.provinces,
        categories=org.categories,
        at=at,
    )


async def upsert(uow: UnitOfWork, org: Organization, at: datetime) -> bool:
    """Save a partner and emit ``PartnerChanged``; returns True when it is new."""
    created = await save_organization(uow.session, org, at)
    change: Literal["created", "updated", "deactivated"] = (
        "created" if created else ("deactivated" if org.status != "active" else "updated")
    )
    uow.emit(changed(org, change, at))
    return created


async def import_directory(uow: UnitOfWork, directory: Directory, at: datetime) -> ImportOut:
    created = 0
    for org in directory.organizations:
        created += await upsert(uow, org, at)
    return ImportOut(created=created, updated=len(directory.organizations) - created)


def partner_out(org: Organization) -> PartnerOut:
    provinces = org.provinces
    return PartnerOut(
        id=org.id,
        name=org.name,
        province=provinces[0] if provinces else "",
        provinces=provinces,
        categories=org.categories,
        active=org.status == "active",
        status=org.status,
    )


def build_router(rt: Runtime) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/partners", response_model=list[PartnerOut], tags=["partners"])
    async def list_partners(
        province: str | None = Query(default=None, pattern=r"^\d{2}$"),
    ) -> list[PartnerOut]:
        """The directory (public facts about organisations), optionally those serving a province."""
        async with rt.sessions() as session:
            return [partner_out(o) for o in await organizations(session, province)]

    @router.get("/v1/partners/{partner_id}", response_model=Organization, tags=["partners"])
    async def get_partner(partner_id: str) -> Organization:
        async with rt.sessions() as session:
            row = await session.get(PartnerOrgRow, partner_id)
        if row is None:
            raise PartnerNotFound(f"no partner {partner_id}")
        return row.to_domain()

    @router.put("/v1/admin/partners/{partner_id}", response_model=Organization, tags=["directory admin"])
    async def put_partner(
        partner_id: str, body: Organization, _who: Annotated[Principal, Depends(ADMIN)]
    ) -> Organization:
        """Create or replace a partner with its services, locations and areas."""
        if body.id != partner_id:
            raise InvalidDirectory(
                "id: must equal the partner id in the path", errors=["id: must match the path"]
            )
        async with rt.uow() as uow:
            await upsert(uow, body, datetime.now(UTC))
            await uow.commit()
        return body

    @router.post(
        "/v1/admin/partners/{partner_id}/status", response_model=PartnerOut, tags=["directory admin"]
    )
    async def set_status(
        partner_id: str, body: StatusIn, _who: Annotated[Principal, Depends(ADMIN)]
    ) -> PartnerOut:
        """Activate, deactivate or temporarily close a partner (matching skips it unless active)."""
        async with rt.uow() as uow:
            row = await uow.session.get(PartnerOrgRow, partner_id)
            if row is None:
                raise PartnerNotFound(f"no partner {partner_id}")
            org = row.to_domain().model_copy(update={"status": body.status})
            org = Organization.model_validate(org.model_dump())
            await upsert(uow, org, datetime.now(UTC))
            await uow.commit()
        return partner_out(org)

    @router.post("/v1/admin/directory/import", response_model=ImportOut, tags=["directory admin"])
    async def import_hsds(
        _who: Annotated[Principal, Depends(ADMIN)], document: Annotated[dict[str, Any], Body()]
    ) -> ImportOut:
        """An HSDS 3.0 document: taken whole, or rejected whole with every error listed (422)."""
        try:
            directory = hsds.parse(document)
        except DirectoryError as exc:
            raise InvalidDirectory(
                f"{len(exc.errors)} error(s); nothing was imported", errors=exc.errors
            ) from None
        async with rt.uow() as uow:
            out = await import_directory(uow, directory, datetime.now(UTC))
            await uow.commit()
        return out

    @router.get("/v1/admin/directory/export", tags=["directory admin"])
    async def export_hsds(_who: Annotated[Principal, Depends(ADMIN)]) -> dict[str, Any]:
        """The whole directory as an HSDS 3.0 document."""
        async with rt.sessions() as session:
            return hsds.export(Directory(organizations=await organizations(session)))

    return router
