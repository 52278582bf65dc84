"""The audit log, read-only: who read or changed her identifying data, when and why."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from services.intake.api.models import AuditOut
from services.intake.casefile import CaseFiles
from services.intake.protect import Protector
from services.intake.store import AuditRow, audit_t
from shared.auth import Principal, Role, require
from shared.runtime import Runtime


def build_router(rt: Runtime, protector: Protector) -> APIRouter:
    router = APIRouter(tags=["audit"])

    @router.get("/v1/audit", response_model=list[AuditOut])
    async def audit_log(
        who: Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.CENTRAL_ADMIN))],
        case_id: str = Query(min_length=1, max_length=64),
        limit: int = Query(default=200, ge=1, le=1000),
    ) -> list[AuditOut]:
        """The audit records of one case (supervisors: cases of their province), oldest first."""
        async with rt.sessions() as session:
            await CaseFiles(session, protector).row(case_id, who.sees_province, allow_erased=True)
            rows = (
                await session.execute(
                    select(AuditRow).where(audit_t.c.case_id == case_id).order_by(audit_t.c.id).limit(limit)
                )
            ).scalars()
            return [
                AuditOut(
                    id=r.id or 0,
                    at=r.at,
                    actor=r.actor,
                    action=r.action,
                    case_id=r.case_id,
                    fields=[f for f in r.fields.split(",") if f],
                    purpose=r.purpose,
                )
                for r in rows
            ]

    return router
