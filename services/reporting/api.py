"""Reporting's HTTP routes: aggregate figures only.

Staff (caseworkers and supervisors for their own province, central admins for all) see exact
figures, and every such view is written to the audit table; donors see small cells as "<k"."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.reporting import charts
from services.reporting.domain import DISTINCT_METRICS
from services.reporting.donor import FIGURE_METRICS, donor_report
from services.reporting.exports import to_csv, to_xlsx
from services.reporting.keys import phases_for
from services.reporting.periods import key_for_range, months_between, parse_period
from services.reporting.queries import GROUPS, Block, Report, blocks, flat_table, render
from services.reporting.reads import CubeQuery, cube_rows, distinct_rows
from services.reporting.settings import ReportingSettings
from services.reporting.store import audit, record_audit
from shared.auth import PROVINCE_ROLES, Forbidden, Principal, Role, require
from shared.db import one_snapshot
from shared.events import AgeBand, MigrationKind, ReturnKind
from shared.http import ProblemError
from shared.provinces import UnknownProvince, resolve_province
from shared.runtime import Runtime
from shared.vocab import Channel


class BadPeriod(ProblemError):
    status = 422
    title = "Invalid period"


class BadQuery(ProblemError):
    status = 422
    title = "Invalid report query"


class NotFound(ProblemError):
    status = 404
    title = "Not found"


Figure = int | float | str | None


class Summary(BaseModel):
    province: str | None
    from_: date | None = Field(serialization_alias="from")
    to: date | None
    period: str | None = None
    group_by: list[str] = []
    #: Smallest figure shown (donor view); None for exact figures.
    suppression_k: int | None = None
    cases_opened: Figure
    referrals_requested: Figure
    messages_sent: Figure
    totals: dict[str, Figure]
    by_category: dict[str, dict[str, Figure]]
    rows: list[dict[str, Any]] = []


View = Annotated[
    Literal["exact", "donor"], Query(description="donor: show what a donor sees (small cells hidden)")
]
Provinces = Annotated[str | None, Query(description="comma-separated province codes or names")]
GroupBy = Annotated[
    list[str] | None, Query(description=f"any of {', '.join(GROUPS)} (repeat or comma-separate)")
]
Period = Annotated[str | None, Query(description="YYYY, YYYY-Qn, YYYY-MM, YYYY-MM-DD or a phase name")]


READERS = require(Role.CASEWORKER, Role.SUPERVISOR, Role.CENTRAL_ADMIN, Role.DONOR)
_EXTRA = {"unknown", "none"}  # no profile recorded; not a case (community activities)
DIMENSION_VALUES: dict[str, set[str]] = {
    "channel": {c.value for c in Channel} | _EXTRA,
    "migration_kind": {m.value for m in MigrationKind} | _EXTRA,
    "return_kind": {r.value for r in ReturnKind} | _EXTRA,
    "age_band": {a.value for a in AgeBand} | _EXTRA,
}


def _provinces(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    out = []
    for code in value.split(","):
        try:
            out.append(resolve_province(code.strip()).code)
        except UnknownProvince as exc:
            raise BadQuery(f"provinces: {exc}") from None
    return tuple(dict.fromkeys(out))


def run_report(session: Session, q: CubeQuery) -> Report:
    """The totals and (when grouped) the rows of a report, from the live tables, all of its reads
    in one snapshot (over days, distinct women are her facts less her repeats, two reads that
    must see the same facts)."""
    one_snapshot(session)

    def rows(query: CubeQuery) -> list[tuple[Any, ...]]:
        found = cube_rows(session, query)
        if query.distinct is None:  # a range that is no pre-aggregated period: distinct from the facts
            found += distinct_rows(session, query)
        return found

    if not q.group_by:
        return Report((), blocks(rows(q), 0).get((), Block()), {})
    grouped = blocks(rows(q), len(q.group_by))
    if q.distinct is None:
        # Distinct women from the facts: each of her facts holds her case's categories (and a
        # woman is counted once per province she was seen in, grouped or not), so she is in one
        # group and the groups add up to the total, distinct women too. No second read of facts.
        total = Block()
        for block in grouped.values():
            total.merge(block, distinct=True)
        return Report(q.group_by, total, grouped)
    # From the cube, the ungrouped distinct cells are read for the total (a small read of its own
    # cells); the other figures add up.
    total = blocks(cube_rows(session, replace(q, group_by=()), metrics=DISTINCT_METRICS), 0).get((), Block())
    for block in grouped.values():
        total.merge(block)
    return Report(q.group_by, total, grouped)


def build_router(rt: Runtime) -> APIRouter:
    router = APIRouter()
    settings = rt.settings
    assert isinstance(settings, ReportingSettings)
    phases = phases_for(settings)
    k_default = settings.suppression_k

    def view_k(who: Principal, view: str) -> int | None:
        return k_default if who.role is Role.DONOR or view == "donor" else None

    async def audited(who: Principal, action: str, query: dict[str, Any], exact: bool) -> None:
        async with rt.sessions() as session, session.begin():
            await session.run_sync(
                lambda s: record_audit(
                    s,
                    actor=who.audit_name,
                    role=who.role.value,
                    action=action,
                    query=json.dumps(query, default=str, sort_keys=True),
                    exact=exact,
                    at=datetime.now(UTC),
                )
            )

    async def summary_of(
        who: Principal,
        province: str | None,
        provinces: str | None,
        from_: date | None,
        to: date | None,
        period: str | None,
        group_by: list[str] | None,
        filters: dict[str, str | None],
        view: str,
        action: str,
    ) -> tuple[Summary, dict[str, Any]]:
        scope = _provinces(provinces) + ((province,) if province else ())
        if who.role in PROVINCE_ROLES:
            if any(p != who.province for p in scope):
                raise Forbidden(f"province: you may see figures of province {who.province} only")
            scope = (who.province,)  # type: ignore[assignment]
        if period:
            if from_ or to:
                raise BadPeriod("give either period or from/to, not both")
            try:
                from_, to = parse_period(period, phases)
            except ValueError as exc:
                raise BadPeriod(f"period: {exc}") from None
        if from_ and to and from_ > to:
            raise BadPeriod(f"from ({from_}) is after to ({to})")
        for dim, value in filters.items():
            if value and value not in DIMENSION_VALUES[dim]:
                raise BadQuery(
                    f"{dim}: unknown value {value!r}; use one of {', '.join(sorted(DIMENSION_VALUES[dim]))}"
                )
        groups = tuple(dict.fromkeys(g for item in group_by or [] for g in item.split(",") if g))
        unknown = [g for g in groups if g not in GROUPS]
        if unknown:
            raise BadQuery(f"group_by: unknown dimension {unknown[0]!r}; use {', '.join(GROUPS)}")
        q = CubeQuery.over(from_, to, phases, scope, groups, tuple((d, v) for d, v in filters.items() if v))
        async with rt.read_sessions() as session:
            report = await session.run_sync(run_report, q)
        k = view_k(who, view)
        rendered = render(report, k)
        params = {"provinces": scope, "from": from_, "to": to, "group_by": groups, "filters": dict(q.filters)}
        await audited(who, action, params, exact=k is None)
        totals = rendered["totals"]
        summary = Summary(
            province=scope[0] if len(scope) == 1 else None,
            from_=from_,
            to=to,
            period=key_for_range(from_, to, phases),
            group_by=list(groups),
            suppression_k=k,
            cases_opened=totals["cases_opened"],
            referrals_requested=totals["referrals_requested"],
            messages_sent=totals["messages_sent"],
            totals=totals,
            by_category=rendered["by_category"],
            rows=rendered["rows"],
        )
        return summary, rendered

    @router.get("/v1/reports/summary", response_model=Summary, response_model_by_alias=True, tags=["reports"])
    async def summary(
        who: Annotated[Principal, Depends(READERS)],
        province: str | None = Query(default=None, pattern=r"^\d{2}$"),
        provinces: Provinces = None,
        from_: date | None = Query(default=None, alias="from"),
        to: date | None = Query(default=None),
        period: Period = None,
        group_by: GroupBy = None,
        channel: str | None = None,
        migration_kind: str | None = None,
        return_kind: str | None = None,
        age_band: str | None = None,
        view: View = "exact",
    ) -> Summary:
        """Figures over days ``from``..``to`` inclusive (Asia/Ho_Chi_Minh) or a named period, for
        one province, several or all, optionally grouped by province and case categories."""
        filters = {
            "channel": channel,
            "migration_kind": migration_kind,
            "return_kind": return_kind,
            "age_band": age_band,
        }
        result, _ = await summary_of(
            who, province, provinces, from_, to, period, group_by, filters, view, "summary"
        )
        return result

    @router.get("/v1/reports/summary.{fmt}", tags=["reports"], response_class=Response)
    async def summary_export(
        fmt: Literal["csv", "xlsx"],
        who: Annotated[Principal, Depends(READERS)],
        province: str | None = Query(default=None, pattern=r"^\d{2}$"),
        provinces: Provinces = None,
        from_: date | None = Query(default=None, alias="from"),
        to: date | None = Query(default=None),
        period: Period = None,
        group_by: GroupBy = None,
        channel: str | None = None,
        migration_kind: str | None = None,
        return_kind: str | None = None,
        age_band: str | None = None,
        view: View = "exact",
    ) -> Response:
        """The summary table as CSV (UTF-8) or XLSX: one line per group and service category."""
        filters = {
            "channel": channel,
            "migration_kind": migration_kind,
            "return_kind": return_kind,
            "age_band": age_band,
        }
        result, rendered = await summary_of(
            who, province, provinces, from_, to, period, group_by, filters, view, f"export_{fmt}"
        )
        header, lines = flat_table(rendered, result.group_by)
        if fmt == "csv":
            return Response(
                to_csv(header, lines),
                media_type="text/csv; charset=utf-8",
                headers={"content-disposition": 'attachment; filename="osso-summary.csv"'},
            )
        return Response(
            to_xlsx(header, lines),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"content-disposition": 'attachment; filename="osso-summary.xlsx"'},
        )

    async def donor_data(
        who: Principal, phase: str, provinces: str | None, view: str
    ) -> tuple[dict[str, Any], tuple[date, date], tuple[str, ...], int | None]:
        if who.role in PROVINCE_ROLES:
            raise Forbidden("the donor report is for donors and central staff")
        found = phases.get(phase)
        if found is None:
            raise NotFound(
                f"phase: no project phase {phase!r}; configured: {', '.join(n for n, _, _ in phases.ranges)}"
            )
        scope = _provinces(provinces)
        key = f"P{phase}"
        q = CubeQuery(additive=(key,), distinct=key, provinces=scope, group_by=("province",))
        async with rt.read_sessions() as session:
            report = await session.run_sync(run_report, q)
        k = view_k(who, view)
        names = [
            {"code": p, "name": resolve_province(p).name}
            for p in (scope or sorted(g[0] for g in report.rows))
        ]
        body = donor_report(
            render(report, k),
            phase=phase,
            start=found[0].isoformat(),
            end=found[1].isoformat(),
            provinces=names,
            k=k,
        )
        return body, found, scope, k

    @router.get("/v1/reports/donor/{phase}", tags=["reports"])
    async def donor(
        phase: str,
        who: Annotated[Principal, Depends(READERS)],
        provinces: Provinces = None,
        view: View = "exact",
    ) -> dict[str, Any]:
        """The donor report for a project phase and a set of provinces (default: every province)."""
        body, _, scope, k = await donor_data(who, phase, provinces, view)
        await audited(who, "donor_report", {"phase": phase, "provinces": scope}, exact=k is None)
        return body

    async def donor_chart(
        phase: str, figure: str, fmt: str, who: Principal, provinces: str | None, view: str
    ) -> Response:
        """One figure of the donor report month by month (SVG, or a Vega-Lite spec)."""
        if figure not in FIGURE_METRICS:
            raise NotFound(f"figure: no chart {figure!r}; use one of {', '.join(FIGURE_METRICS)}")
        if who.role in PROVINCE_ROLES:
            raise Forbidden("the donor report is for donors and central staff")
        found = phases.get(phase)
        if found is None:
            raise NotFound(f"phase: no project phase {phase!r}")
        scope = _provinces(provinces)
        months = months_between(*found)

        def monthly(session: Session) -> Report:
            one_snapshot(session)  # the months of one chart from one state
            rows: list[tuple[Any, ...]] = []
            for m in months:
                q = CubeQuery(additive=(m,), distinct=m, provinces=scope)
                rows += [(m, *row) for row in cube_rows(session, q, metrics=[figure])]
            by_month = blocks(rows, 1)
            total = Block()
            for block in by_month.values():  # the months add up to this total, as a reader would add them
                for metric, value in block.figures.items():
                    total.add("", metric, value)
            return Report(("month",), total, {(m,): by_month.get((m,), Block()) for m in months})

        async with rt.read_sessions() as session:
            report = await session.run_sync(monthly)
        k = view_k(who, view)
        rendered = render(report, k)
        values = [row["totals"][figure] for row in rendered["rows"]]
        await audited(
            who, "donor_chart", {"phase": phase, "figure": figure, "provinces": scope}, exact=k is None
        )
        title = f"{figure.replace('_', ' ')} — {phase}"
        data = charts.series(months, values)
        if fmt == "svg":
            return Response(charts.svg(title, data), media_type="image/svg+xml")
        return Response(
            json.dumps(charts.vega_lite(title, data), ensure_ascii=False), media_type="application/json"
        )

    @router.get("/v1/reports/donor/{phase}/charts/{figure}.svg", tags=["reports"], response_class=Response)
    async def donor_chart_svg(
        phase: str,
        figure: str,
        who: Annotated[Principal, Depends(READERS)],
        provinces: Provinces = None,
        view: View = "exact",
    ) -> Response:
        """One figure of the donor report month by month, as an SVG bar chart."""
        return await donor_chart(phase, figure, "svg", who, provinces, view)

    @router.get(
        "/v1/reports/donor/{phase}/charts/{figure}.vl.json", tags=["reports"], response_class=Response
    )
    async def donor_chart_vega(
        phase: str,
        figure: str,
        who: Annotated[Principal, Depends(READERS)],
        provinces: Provinces = None,
        view: View = "exact",
    ) -> Response:
        """One figure of the donor report month by month, as a Vega-Lite spec."""
        return await donor_chart(phase, figure, "vl.json", who, provinces, view)

    @router.get("/v1/reports/audit", tags=["reports"])
    async def audit_log(
        who: Annotated[Principal, Depends(require(Role.CENTRAL_ADMIN))],
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> list[dict[str, Any]]:
        """Who looked at which figures, newest first."""
        async with rt.read_sessions() as session:
            rows = (
                (await session.execute(select(audit).order_by(audit.c.id.desc()).limit(limit)))
                .mappings()
                .all()
            )
        return [{**row, "at": row["at"].isoformat()} for row in rows]

    return router
