"""Reporting's HTTP routes over a real SQLite projection (no bus needed): scopes, filters, bad
input named, donor suppression, exports, charts, audit."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import create_engine

from services.reporting import api
from services.reporting.settings import ReportingSettings
from services.reporting.store import LIVE, metadata, write_memory_state
from shared.auth import Role, mint_token
from shared.db import create_schema
from shared.runtime import Runtime, create_http_app
from shared.settings import PlatformSettings
from tests.unit.test_reporting_history import PHASES, expected, generate, project

HISTORY = generate(300, seed=5)


@pytest.fixture(scope="module")
async def client(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    tmp = tmp_path_factory.mktemp("reporting-api")
    db = tmp / "reporting.db"
    engine = create_engine(f"sqlite:///{db}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        write_memory_state(conn, LIVE, project(HISTORY.events))
    engine.dispose()
    settings = ReportingSettings(
        database_url=f"sqlite+aiosqlite:///{db}", platform=PlatformSettings(data_dir=Path(tmp)), phases=PHASES
    )
    rt = Runtime("reporting", settings, metadata)
    await create_schema(rt.engine, metadata)
    app = create_http_app(rt, [api.build_router(rt)], title="reporting api test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reporting") as c:
        yield c, rt
    await rt.engine.dispose()


def bearer(rt: Runtime, role: Role, province: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(rt.jwt_secret, subject='t', role=role, province=province)}"}


async def test_summary_keeps_the_skeleton_fields_and_adds_up(
    client: tuple[httpx.AsyncClient, Runtime],
) -> None:
    c, rt = client
    r = await c.get(
        "/v1/reports/summary",
        params={"province": "31", "from": "2025-01-01", "to": "2025-12-31"},
        headers=bearer(rt, Role.CENTRAL_ADMIN),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    want = expected(HISTORY, date(2025, 1, 1), date(2025, 12, 31), {"31"})
    assert body["province"] == "31" and body["from"] == "2025-01-01" and body["period"] == "Y2025"
    assert (body["cases_opened"], body["referrals_requested"], body["messages_sent"]) == (
        want["cases_opened"], want["referrals_requested"], want["messages_sent"],
    )  # fmt: skip
    assert body["totals"]["women_reached"] == want["women_reached"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2025-02-01", "to": "2025-01-01"}, "from"),
        ({"period": "2025-13"}, "period"),
        ({"period": "2025", "from": "2025-01-01"}, "period"),
        ({"group_by": "colour"}, "group_by"),
        ({"age_band": "old"}, "age_band"),
        ({"provinces": "Atlantis"}, "provinces"),
        ({"province": "1"}, "province"),
    ],
)
async def test_bad_queries_are_422_naming_the_field(
    client: tuple[httpx.AsyncClient, Runtime], params: dict, field: str
) -> None:
    c, rt = client
    r = await c.get("/v1/reports/summary", params=params, headers=bearer(rt, Role.CENTRAL_ADMIN))
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"]


async def test_scopes(client: tuple[httpx.AsyncClient, Runtime]) -> None:
    c, rt = client
    assert (await c.get("/v1/reports/summary")).status_code == 401
    cw = bearer(rt, Role.CASEWORKER, "92")
    assert (await c.get("/v1/reports/summary", params={"provinces": "01,92"}, headers=cw)).status_code == 403
    assert (await c.get("/v1/reports/summary", headers=cw)).json()["province"] == "92"
    assert (await c.get("/v1/reports/donor/phase-1", headers=cw)).status_code == 403
    partner = {
        "Authorization": f"Bearer {mint_token(rt.jwt_secret, subject='p', role=Role.PARTNER, partner_id='x')}"
    }
    assert (await c.get("/v1/reports/summary", headers=partner)).status_code == 403
    assert (await c.get("/v1/reports/audit", headers=bearer(rt, Role.DONOR))).status_code == 403


async def test_donors_never_see_a_small_cell(client: tuple[httpx.AsyncClient, Runtime]) -> None:
    c, rt = client
    r = await c.get(
        "/v1/reports/summary",
        params={"period": "2025-07", "group_by": "province,age_band"},
        headers=bearer(rt, Role.DONOR),
    )
    body = r.json()
    assert body["suppression_k"] == 5
    shown = [v for row in [body, *body["rows"]] for v in row["totals"].values()]
    shown += [v for row in [body, *body["rows"]] for cat in row["by_category"].values() for v in cat.values()]
    assert "<5" in shown
    assert not [v for v in shown if isinstance(v, int) and v < 5]
    # Central staff get the exact figures, or the donor view on request.
    exact = await c.get(
        "/v1/reports/summary", params={"period": "2025-07"}, headers=bearer(rt, Role.CENTRAL_ADMIN)
    )
    assert exact.json()["suppression_k"] is None
    preview = await c.get(
        "/v1/reports/summary",
        params={"period": "2025-07", "view": "donor"},
        headers=bearer(rt, Role.CENTRAL_ADMIN),
    )
    assert preview.json()["suppression_k"] == 5


async def test_exports_donor_report_charts_and_audit(client: tuple[httpx.AsyncClient, Runtime]) -> None:
    c, rt = client
    admin = bearer(rt, Role.CENTRAL_ADMIN)
    params = {"period": "phase-2", "group_by": "province"}
    body = (await c.get("/v1/reports/summary", params=params, headers=admin)).json()
    lines = list(
        csv.reader(
            io.StringIO(
                (await c.get("/v1/reports/summary.csv", params=params, headers=admin)).content.decode(
                    "utf-8-sig"
                )
            )
        )
    )
    header = lines[0]
    total = next(line for line in lines if line[0] == "total" and line[1] == "all")
    assert int(total[header.index("referrals_completed")]) == body["totals"]["referrals_completed"]
    book = load_workbook(
        io.BytesIO((await c.get("/v1/reports/summary.xlsx", params=params, headers=admin)).content)
    )
    rows = list(book.active.iter_rows(values_only=True))  # type: ignore[union-attr]
    assert list(rows[0]) == header and len(rows) == len(lines)

    donor = bearer(rt, Role.DONOR)
    report = (await c.get("/v1/reports/donor/phase-1", headers=donor)).json()
    assert [f["figure"] for f in report["figures"]][:2] == ["women_reached", "sessions"]
    supported = next(f for f in report["figures"] if f["figure"] == "women_supported")
    assert set(supported["by_category"]) >= {"legal", "health_education", "psychological", "livelihood"}
    assert (await c.get("/v1/reports/donor/phase-9", headers=donor)).status_code == 404
    for figure in ("women_reached", "officials_trained"):
        svg = await c.get(f"/v1/reports/donor/phase-1/charts/{figure}.svg", headers=donor)
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        spec = (await c.get(f"/v1/reports/donor/phase-1/charts/{figure}.vl.json", headers=donor)).json()
        assert spec["$schema"].endswith("vega-lite/v5.json") and len(spec["data"]["values"]) == 12
    assert (await c.get("/v1/reports/donor/phase-1/charts/names.svg", headers=donor)).status_code == 404

    audit = (await c.get("/v1/reports/audit", headers=admin)).json()
    assert {"summary", "export_csv", "export_xlsx", "donor_report", "donor_chart"} <= {
        a["action"] for a in audit
    }
    assert all(
        a["exact"] is (a["role"] != "donor")
        for a in audit
        if a["action"] != "summary" or a["role"] == "donor"
    )
