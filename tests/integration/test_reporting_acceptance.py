"""Issue 7 acceptance, against a real nats-server and a real SQLite file: a generated two-year
history of cases in the five pilot provinces (old province codes before 1 July 2025) is published
straight to JetStream; the reporting service's figures equal the ones computed in the test from the
generated records; duplicates, redeliveries and erasures change nothing; a rebuild equals live."""

from __future__ import annotations

import csv
import io
import random
import time
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from openpyxl import load_workbook
from sqlalchemy import MetaData, select

from services.reporting import api, handlers
from services.reporting.rebuild import compare, rebuild
from services.reporting.settings import ReportingSettings
from services.reporting.store import LIVE, audit, cube_contents, metadata, projection_tables
from shared.auth import Role, mint_token
from shared.envelope import encode
from shared.events import CaseOpened, Event
from shared.natsserver import NatsServer
from shared.runtime import Runtime, create_http_app
from shared.settings import BusSettings, PlatformSettings
from tests.helpers import aeventually
from tests.unit.test_reporting_history import CHECKS, PHASES, History, assert_matches, expected, generate

N_CASES = 2000
DURABLES = [d for d, _ in handlers.SUBSCRIPTIONS]


def settings_for(tmp: Path, url: str) -> ReportingSettings:
    return ReportingSettings(
        database_url=f"sqlite+aiosqlite:///{tmp / 'reporting.db'}",
        bus=BusSettings(nats_url=url, ack_wait=5.0, nak_delay=0.2, max_deliver=5, batch_size=500),
        platform=PlatformSettings(data_dir=tmp),
        phases=PHASES,
    )


async def stored(js: nats.js.JetStreamContext) -> int:
    return sum([(await js.stream_info(stream.name)).state.messages for _, stream in handlers.SUBSCRIPTIONS])


async def publish_all(url: str, events: list[Event], *, same_id_as: list[str] | None = None) -> list[str]:
    """Publish ``events`` as a service's relay would (the event id as ``Nats-Msg-Id``), over core
    NATS with a flush per thousand (no per-message round trip), and wait until the streams hold
    them; returns their event ids."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    ids = []
    try:
        before = await stored(js)
        for n, event in enumerate(events):
            message = encode(event, event_id=same_id_as[n] if same_id_as else None)
            headers = dict(message.headers)
            if same_id_as:  # a redelivery or replay: same event id, another message id
                headers["Nats-Msg-Id"] = f"{message.event_id}:{uuid.uuid4()}"
            ids.append(message.event_id)
            await nc.publish(message.subject, message.body, headers=headers)
            if n % 1000 == 999:
                await nc.flush(timeout=30)
        await nc.flush(timeout=30)

        async def all_stored() -> bool:
            return await stored(js) >= before + len(events)

        await aeventually(all_stored, timeout=60, interval=0.2)
    finally:
        await nc.close()
    return ids


async def caught_up(url: str) -> bool:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for durable, stream in handlers.SUBSCRIPTIONS:
            info = await js.consumer_info(stream.name, durable)
            if info.num_pending or info.num_ack_pending:
                return False
        return True
    finally:
        await nc.close()


async def live_cube(rt: Runtime) -> dict:
    async with rt.engine.connect() as conn:
        return await conn.run_sync(cube_contents, LIVE)


@pytest.fixture
async def service(
    tmp_path: Path, nats_server: NatsServer
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    settings = settings_for(tmp_path, nats_server.url)
    rt = Runtime("reporting", settings, metadata)
    rt.include(handlers.build_router(rt))
    app = create_http_app(rt, [api.build_router(rt)], title="reporting under test")
    await rt.start()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reporting")
    try:
        yield rt, client
    finally:
        await client.aclose()
        await rt.stop()


def bearer(rt: Runtime, role: Role, province: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(rt.jwt_secret, subject='t', role=role, province=province)}"}


async def figures(
    client: httpx.AsyncClient, rt: Runtime, start: date | None, end: date | None, provinces: set[str] | None
) -> dict:
    params: dict[str, str] = {}
    if start:
        params["from"] = start.isoformat()
    if end:
        params["to"] = end.isoformat()
    if provinces:
        params["provinces"] = ",".join(sorted(provinces))
    r = await client.get("/v1/reports/summary", params=params, headers=bearer(rt, Role.CENTRAL_ADMIN))
    assert r.status_code == 200, r.text
    body = r.json()
    out = dict(body["totals"])
    for cat, cat_figures in body["by_category"].items():
        out[f"women_supported/{cat}"] = cat_figures["women_supported"]
    return out


async def assert_expected_figures(client: httpx.AsyncClient, rt: Runtime, h: History) -> None:
    for start, end, provinces in CHECKS:
        wanted = expected(h, start or date(1900, 1, 1), end or date(9999, 1, 1), provinces)
        assert_matches(await figures(client, rt, start, end, provinces), wanted)


@pytest.mark.timeout(420)
async def test_generated_history_gives_exact_figures_and_rebuild_equals_live(
    service: tuple[Runtime, httpx.AsyncClient], nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, client = service
    h = generate(N_CASES, seed=2025)
    # Some acks are lost (as if the process died after its commit): those events are redelivered.
    real_ack, lost = Msg.ack, []

    async def sometimes_lost(self: Msg) -> None:
        if len(lost) < 40 and random.random() < 0.01:
            lost.append(1)
            return
        await real_ack(self)

    monkeypatch.setattr(Msg, "ack", sometimes_lost)
    # Out of order across streams: every referral, message and activity before any case is opened.
    cases_last = sorted(h.events, key=lambda e: isinstance(e, CaseOpened))
    t0 = time.monotonic()
    ids = await publish_all(nats_server.url, cases_last)
    print("published", len(ids), time.monotonic() - t0)
    await aeventually(lambda: caught_up(nats_server.url), timeout=240, interval=0.5)
    print("caught up", time.monotonic() - t0)
    assert lost
    await assert_expected_figures(client, rt, h)
    before = await live_cube(rt)

    # Duplicates: the same events again under their event ids (the inbox drops them) and under new
    # event ids (the keyed facts drop them).
    rng = random.Random(1)
    sample = rng.sample(range(len(cases_last)), 400)
    await publish_all(nats_server.url, [cases_last[i] for i in sample], same_id_as=[ids[i] for i in sample])
    await publish_all(nats_server.url, [cases_last[i] for i in rng.sample(range(len(cases_last)), 400)])
    # Erasure does not change past aggregates.
    await publish_all(nats_server.url, h.erasures)
    await aeventually(lambda: caught_up(nats_server.url), timeout=60, interval=0.5)
    assert await live_cube(rt) == before

    # Rebuild from the streams into fresh tables: equal to live; then swapped in, figures unchanged.
    settings = settings_for(Path(str(rt.settings.platform.data_dir)), nats_server.url)
    # The kept one with little memory for figures: spread over their cells some twenty times.
    small = settings.model_copy(update={"rebuild_figures": 3_000})
    kept = await rebuild(small, engine=rt.engine, swap_tables=False)
    assert kept.events >= len(h.events) and kept.skipped == 0 and kept.spreads > 10
    assert await compare(rt.engine, kept.tables.removeprefix("rpt_*")) == (0, 0, 0)
    # The swapped one with room for all of them: spread once, after the replay.
    swapped = await rebuild(settings.model_copy(update={"rebuild_figures": 1_000_000}), engine=rt.engine)
    assert swapped.swapped and swapped.spreads == 1
    assert await live_cube(rt) == before
    await assert_expected_figures(client, rt, h)
    # The kept copy is not live; drop it.
    fresh = projection_tables(MetaData(), kept.tables.removeprefix("rpt_*"))
    async with rt.engine.begin() as conn:
        for table in fresh.all():
            await conn.exec_driver_sql(f'DROP TABLE "{table.name}"')

    await _reports(client, rt, h)


async def _reports(client: httpx.AsyncClient, rt: Runtime, h: History) -> None:
    admin, donor = bearer(rt, Role.CENTRAL_ADMIN), bearer(rt, Role.DONOR)
    # Grouped by province and age band, exact for central staff; each group adds up to the total.
    r = await client.get(
        "/v1/reports/summary", params={"period": "2025", "group_by": "province,age_band"}, headers=admin
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["period"] == "Y2025" and body["suppression_k"] is None
    assert (
        sum(row["totals"]["referrals_requested"] for row in body["rows"])
        == body["totals"]["referrals_requested"]
    )
    assert {row["group"]["province"] for row in body["rows"]} == {"01", "31", "92"}
    # A caseworker sees her own province only.
    cw = bearer(rt, Role.CASEWORKER, "31")
    assert (await client.get("/v1/reports/summary", params={"province": "01"}, headers=cw)).status_code == 403
    own = (await client.get("/v1/reports/summary", params={"period": "phase-1"}, headers=cw)).json()
    assert own["province"] == "31"
    assert own["cases_opened"] == expected(h, *PHASES["phase-1"], {"31"})["cases_opened"]
    # Donors: small cells hidden, complementary cells too.
    month = (
        await client.get(
            "/v1/reports/summary", params={"period": "2025-07", "group_by": "province"}, headers=donor
        )
    ).json()
    assert month["suppression_k"] == 5
    assert all(
        v == "<5" or (isinstance(v, int) and v >= 5)
        for v in month["totals"].values()
        if not isinstance(v, float) and v is not None
    )
    # The donor report for a phase and provinces, with a chart per figure.
    report = (
        await client.get("/v1/reports/donor/phase-2", params={"provinces": "31,92"}, headers=donor)
    ).json()
    assert [p["code"] for p in report["provinces"]] == ["31", "92"]
    reached = next(f for f in report["figures"] if f["figure"] == "women_reached")
    assert reached["total"] == expected(h, *PHASES["phase-2"], {"31", "92"})["women_reached"]
    assert "phụ nữ" in report["summary_vi"]
    svg = await client.get(
        "/v1/reports/donor/phase-2/charts/women_reached.svg", params={"provinces": "31,92"}, headers=donor
    )
    assert svg.status_code == 200 and svg.text.startswith("<svg")
    spec = await client.get("/v1/reports/donor/phase-2/charts/sessions.vl.json", headers=donor)
    assert spec.status_code == 200 and len(spec.json()["data"]["values"]) == 12
    # CSV and XLSX of the same table.
    csv_r = await client.get(
        "/v1/reports/summary.csv", params={"period": "2025", "group_by": "province"}, headers=admin
    )
    lines = list(csv.reader(io.StringIO(csv_r.content.decode("utf-8-sig"))))
    assert lines[0][:2] == ["province", "category"]
    total_line = next(line for line in lines if line[0] == "total" and line[1] == "all")
    assert int(total_line[lines[0].index("cases_opened")]) == body["totals"]["cases_opened"]
    xlsx_r = await client.get(
        "/v1/reports/summary.xlsx", params={"period": "2025", "group_by": "province"}, headers=admin
    )
    sheet = load_workbook(io.BytesIO(xlsx_r.content)).active
    assert sheet is not None
    assert [c.value for c in sheet[1]][:2] == ["province", "category"]
    assert sheet.max_row == len(lines)
    # Every exact view was audited.
    async with rt.sessions() as session:
        rows = (await session.execute(select(audit.c.role, audit.c.exact))).all()
    assert ("central_admin", True) in rows and ("donor", False) in rows
