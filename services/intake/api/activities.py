"""Community activities: outreach sessions and trainings for officials (seed figures), not
linked to any woman, counted by reporting."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from services.intake.api.cases import CASE_STAFF, Unprocessable
from services.intake.api.models import ActivityIn, ActivityOut, ParticipantsIn
from services.intake.domain import Activity, DomainError
from services.intake.store import ActivityRow, activities_t
from shared.auth import Forbidden, Principal, Role
from shared.events import ActivityKind, Participants
from shared.ids import new_id
from shared.runtime import Runtime
from shared.vocab import ServiceCategory

Staff = Annotated[Principal, Depends(CASE_STAFF)]


def _out(row: ActivityRow) -> ActivityOut:
    participants = [ParticipantsIn(**p) for p in row.participants]
    return ActivityOut(
        id=row.id,
        province=row.province,
        kind=ActivityKind(row.kind),
        held_on=row.held_on,
        topics=[ServiceCategory(t) for t in row.topics.split(",") if t],
        title=row.title,
        participants=participants,
        total_participants=sum(p.count for p in participants),
        recorded_at=row.recorded_at,
    )


def build_router(rt: Runtime) -> APIRouter:
    router = APIRouter(tags=["activities"])

    @router.post("/v1/activities", status_code=201, response_model=ActivityOut)
    async def record_activity(body: ActivityIn, who: Staff) -> ActivityOut:
        if not who.sees_province(body.province):
            raise Forbidden(f"province: you may record activities in province {who.province} only")
        now = datetime.now(UTC)
        try:
            activity = Activity.record(
                activity_id=new_id(),
                province=body.province,
                kind=body.kind,
                held_on=body.held_on,
                topics=body.topics,
                participants=[Participants(**p.model_dump()) for p in body.participants],
                at=now,
            )
        except DomainError as exc:
            raise Unprocessable(str(exc)) from None
        row = ActivityRow(
            id=activity.id,
            province=activity.province,
            kind=activity.kind.value,
            held_on=activity.held_on,
            topics=",".join(t.value for t in activity.topics),
            title=body.title,
            participants=[p.model_dump(mode="json") for p in activity.participants],
            recorded_by=who.audit_name,
            recorded_at=now,
        )
        async with rt.uow() as uow:
            uow.session.add(row)
            uow.emit(*activity.events)
            await uow.commit()
        return _out(row)

    @router.get("/v1/activities", response_model=list[ActivityOut])
    async def list_activities(
        who: Staff,
        province: str | None = Query(default=None, pattern=r"^\d{2}$"),
        kind: ActivityKind | None = None,
        held_from: date | None = None,
        held_to: date | None = None,
        limit: int = Query(default=100, ge=1, le=500),
    ) -> list[ActivityOut]:
        q = select(ActivityRow)
        c = activities_t.c
        if who.role not in (Role.CENTRAL_ADMIN, Role.SERVICE):
            if province is not None and province != who.province:
                return []
            province = who.province
        if province is not None:
            q = q.where(c.province == province)
        if kind is not None:
            q = q.where(c.kind == kind.value)
        if held_from is not None:
            q = q.where(c.held_on >= held_from)
        if held_to is not None:
            q = q.where(c.held_on <= held_to)
        async with rt.sessions() as session:
            rows = (await session.execute(q.order_by(c.held_on.desc()).limit(limit))).scalars()
            return [_out(r) for r in rows]

    return router
