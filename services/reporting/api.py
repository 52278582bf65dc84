"""Reporting's HTTP routes: aggregate figures only."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from services.reporting.domain import METRICS, NO_CATEGORY
from services.reporting.store import counts
from shared.auth import PROVINCE_ROLES, Forbidden, Principal, Role, require
from shared.http import ProblemError
from shared.runtime import Runtime


class BadPeriod(ProblemError):
    status = 422
    title = "Invalid period"


class Summary(BaseModel):
    province: str | None
    from_: date | None = Field(serialization_alias="from")
    to: date | None
    cases_opened: int
    referrals_requested: int
    messages_sent: int
    totals: dict[str, int]
    by_category: dict[str, dict[str, int]]


READERS = require(Role.CASEWORKER, Role.SUPERVISOR, Role.CENTRAL_ADMIN, Role.DONOR)


def build_router(rt: Runtime) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/reports/summary", response_model=Summary, tags=["reports"])
    async def summary(
        who: Annotated[Principal, Depends(READERS)],
        province: str | None = Query(default=None, pattern=r"^\d{2}$"),
        from_: date | None = Query(default=None, alias="from"),
        to: date | None = Query(default=None),
    ) -> Summary:
        """Totals over days ``from``..``to`` inclusive (Asia/Ho_Chi_Minh), for one province or all."""
        if who.role in PROVINCE_ROLES:
            if province and province != who.province:
                raise Forbidden(f"province: you may see figures of province {who.province} only")
            province = who.province
        if from_ and to and from_ > to:
            raise BadPeriod(f"from ({from_}) is after to ({to})")
        query = select(counts.c.category, counts.c.metric, func.sum(counts.c.value)).group_by(
            counts.c.category, counts.c.metric
        )
        if province:
            query = query.where(counts.c.province == province)
        if from_:
            query = query.where(counts.c.day >= from_)
        if to:
            query = query.where(counts.c.day <= to)
        async with rt.sessions() as session:
            rows = (await session.execute(query)).all()
        totals = dict.fromkeys(METRICS, 0)
        by_category: dict[str, dict[str, int]] = {}
        for category, metric, value in rows:
            totals[metric] = totals.get(metric, 0) + int(value)
            if category != NO_CATEGORY:
                by_category.setdefault(category, {})[metric] = int(value)
        return Summary(
            province=province,
            from_=from_,
            to=to,
            cases_opened=totals["cases_opened"],
            referrals_requested=totals["referrals_requested"],
            messages_sent=totals["messages_sent"],
            totals=totals,
            by_category=by_category,
        )

    return router
