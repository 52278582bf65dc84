"""The referral service in-process against a real nats-server and SQLite: case events drive the loop.

- consent withdrawn, case closed, case erased -> open referrals cancelled with that reason code,
  each cancellation on the partner's own subject;
- needs assessed later -> only the needs not referred yet are matched;
- overdue with a controlled clock -> ReferralOverdue, re-routing to the next-best partner when the
  case's setting allows, and overdue again at the completion deadline.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlmodel import select

from deploy.runner import DEMO_PARTNERS
from services.referral.admin_api import upsert
from services.referral.app import create_app
from services.referral.directory import Organization, Service, ServiceArea
from services.referral.settings import ReferralSettings
from services.referral.store import ReferralTaskRow
from shared.auth import Role, mint_token
from shared.envelope import decode
from shared.events import (
    CaseErased,
    CaseOpened,
    CaseStatus,
    CaseStatusChanged,
    ConsentChanged,
    ConsentPurpose,
    ConsentSnapshot,
    Event,
    Need,
    NeedsAssessed,
)
from shared.natsserver import NatsServer
from shared.runtime import Runtime
from shared.settings import BusSettings, PlatformSettings
from shared.vocab import Channel, ServiceCategory
from tests.helpers import aeventually, all_stream_messages
from tests.integration.test_delivery_guarantees import publish

LEGAL, PSY, LIVELIHOOD = ServiceCategory.LEGAL, ServiceCategory.PSYCHOLOGICAL, ServiceCategory.LIVELIHOOD


def referral_app(tmp: Path, nats_url: str, **settings: Any) -> FastAPI:
    """The referral service's app (not started), its own SQLite file, the demo directory."""
    config = ReferralSettings(
        database_url=f"sqlite+aiosqlite:///{tmp / 'referral.db'}",
        bus=BusSettings(nats_url=nats_url, max_deliver=5, nak_delay=0.2),
        platform=PlatformSettings(data_dir=tmp),
        seed_file=settings.pop("seed_file", DEMO_PARTNERS),
        overdue_interval=0,  # the tests drive the sweeper with their own clock
        **settings,
    )
    return create_app(config)


@pytest.fixture
async def referral(tmp_path: Path, nats_server: NatsServer) -> AsyncIterator[FastAPI]:
    app = referral_app(tmp_path, nats_server.url, intake_url="http://127.0.0.1:9")  # nothing listens
    rt: Runtime = app.state.runtime
    await rt.start()
    try:
        yield app
    finally:
        await rt.stop()


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://referral", timeout=10)


def bearer(
    app: FastAPI, role: Role, province: str | None = None, partner_id: str | None = None
) -> dict[str, str]:
    token = mint_token(
        app.state.runtime.jwt_secret,
        subject=f"test-{role.value}",
        role=role,
        province=province,
        partner_id=partner_id,
    )
    return {"Authorization": f"Bearer {token}"}


def case_opened(
    needs: tuple[ServiceCategory, ...] = (LEGAL, PSY), province: str = "01", **consent: Any
) -> CaseOpened:
    return CaseOpened(
        case_id=str(uuid.uuid4()),
        province=province,
        channel=Channel.HOTLINE,
        needs=list(needs),
        consent=ConsentSnapshot(referral=consent.pop("referral", True), sms=False, **consent),
        opened_at=datetime.now(UTC),
    )


async def referrals(app: FastAPI, case_id: str) -> list[ReferralTaskRow]:
    async with app.state.runtime.sessions() as session:
        query = select(ReferralTaskRow).where(ReferralTaskRow.case_id == case_id)
        return list((await session.execute(query.order_by(ReferralTaskRow.requested_at))).scalars().all())  # type: ignore[arg-type]


async def wait_referrals(app: FastAPI, case_id: str, n: int, **where: str) -> list[ReferralTaskRow]:
    async def check() -> list[ReferralTaskRow]:
        rows = [r for r in await referrals(app, case_id) if all(getattr(r, k) == v for k, v in where.items())]
        assert len(rows) == n, f"{len(rows)} referrals matching {where}, want {n}"
        return rows

    return await aeventually(check, timeout=20)


async def referral_events(url: str, case_id: str) -> list[tuple[str, Event]]:
    """(subject, event) of every referral event of the case now in OSSO_REFERRAL."""
    out = []
    for subject, headers, body in await all_stream_messages(url):
        if subject.startswith("osso.referral."):
            env = decode(headers, body)
            if getattr(env.data, "case_id", None) == case_id:
                out.append((subject, env.data))
    return out


async def test_consent_withdrawn_cancels_open_referrals_on_each_partners_subject(
    referral: FastAPI, nats_server: NatsServer
) -> None:
    opened = case_opened()
    await publish(nats_server.url, opened)
    rows = await wait_referrals(referral, opened.case_id, 2, status="requested")
    assert {(r.category, r.partner_id) for r in rows} == {
        ("legal", "hn-legal-aid"),
        ("psychological", "hn-peaceful-house"),
    }

    # Her consent to referral for other purposes changes nothing.
    sms_off = ConsentChanged(
        case_id=opened.case_id,
        province="01",
        purpose=ConsentPurpose.SMS,
        granted=False,
        recorded_by="caseworker",
        at=datetime.now(UTC),
    )
    withdrawn = sms_off.model_copy(update={"purpose": ConsentPurpose.REFERRAL})
    await publish(nats_server.url, sms_off)
    await publish(nats_server.url, withdrawn)
    await wait_referrals(referral, opened.case_id, 2, status="cancelled", reason="consent_withdrawn")

    async def cancelled_on_the_bus() -> list[str]:
        subjects = [
            s for s, e in await referral_events(nats_server.url, opened.case_id) if e.NAME == "cancelled"
        ]  # type: ignore[attr-defined]
        assert sorted(subjects) == [
            "osso.referral.hn-legal-aid.cancelled",
            "osso.referral.hn-peaceful-house.cancelled",
        ]
        return subjects

    await aeventually(cancelled_on_the_bus, timeout=20)
    events = [e for _, e in await referral_events(nats_server.url, opened.case_id) if e.NAME == "cancelled"]  # type: ignore[attr-defined]
    assert all(e.reason == "consent_withdrawn" and e.by_role == "system" for e in events)  # type: ignore[attr-defined]

    # Needs assessed after the withdrawal: nothing is referred without consent.
    await publish(
        nats_server.url,
        NeedsAssessed(
            case_id=opened.case_id, province="01", needs=[Need(category=LIVELIHOOD)], at=datetime.now(UTC)
        ),
    )
    # A later event on the same consumer (another case closed) proves it went past the assessment.
    other = case_opened((LEGAL,))
    await publish(nats_server.url, other)
    await wait_referrals(referral, other.case_id, 1)
    await publish(
        nats_server.url,
        CaseStatusChanged(
            case_id=other.case_id,
            province="01",
            from_status=CaseStatus.OPEN,
            to_status=CaseStatus.CLOSED,
            at=datetime.now(UTC),
        ),
    )
    await wait_referrals(referral, other.case_id, 1, status="cancelled", reason="case_closed")
    assert len(await referrals(referral, opened.case_id)) == 2


async def test_case_closed_or_erased_cancels_with_that_reason(
    referral: FastAPI, nats_server: NatsServer
) -> None:
    closed, erased = case_opened((LEGAL,)), case_opened((LEGAL,))
    for c in (closed, erased):
        await publish(nats_server.url, c)
        await wait_referrals(referral, c.case_id, 1, status="requested")
    now = datetime.now(UTC)
    await publish(
        nats_server.url,
        CaseStatusChanged(
            case_id=closed.case_id,
            province="01",
            from_status=CaseStatus.OPEN,
            to_status=CaseStatus.CLOSED,
            reason="goal_met",
            at=now,
        ),
    )
    await publish(nats_server.url, CaseErased(case_id=erased.case_id, province="01", at=now))
    await wait_referrals(referral, closed.case_id, 1, status="cancelled", reason="case_closed")
    await wait_referrals(referral, erased.case_id, 1, status="cancelled", reason="case_erased")


async def test_erased_before_opened_refers_nothing(referral: FastAPI, nats_server: NatsServer) -> None:
    opened = case_opened((LEGAL,))
    await publish(nats_server.url, CaseErased(case_id=opened.case_id, province="01", at=datetime.now(UTC)))
    later = case_opened((LEGAL,))

    async def tombstone() -> bool:
        async with referral.state.runtime.sessions() as session:
            from services.referral.store import CaseRow

            row = await session.get(CaseRow, opened.case_id)
            return row is not None and row.status == "erased"

    await aeventually(tombstone, timeout=20)
    await publish(nats_server.url, opened)
    await publish(nats_server.url, later)
    await wait_referrals(referral, later.case_id, 1)
    assert await referrals(referral, opened.case_id) == []


async def test_needs_assessed_later_refers_only_new_needs(referral: FastAPI, nats_server: NatsServer) -> None:
    opened = case_opened((LEGAL,))
    await publish(nats_server.url, opened)
    await wait_referrals(referral, opened.case_id, 1)
    await publish(
        nats_server.url,
        NeedsAssessed(
            case_id=opened.case_id,
            province="01",
            needs=[Need(category=LEGAL), Need(category=LIVELIHOOD, priority="urgent")],  # type: ignore[arg-type]
            at=datetime.now(UTC),
        ),
    )
    rows = await wait_referrals(referral, opened.case_id, 2)
    new = [r for r in rows if r.category == "livelihood"]
    assert len(new) == 1 and new[0].priority == "urgent"
    assert new[0].partner_id in ("hn-vbsp", "hn-vocational")


async def second_legal_partner(app: FastAPI) -> None:
    org = Organization(
        id="hn-legal-clinic",
        name="Phòng tư vấn pháp luật (demo)",
        services=[
            Service(
                id="hn-legal-clinic-legal",
                name="Tư vấn pháp luật",
                category=LEGAL,
                taxonomy_term="legal_aid",
                areas=[ServiceArea(province="01")],
            )
        ],
    )
    async with app.state.runtime.uow() as uow:
        await upsert(uow, org, datetime.now(UTC))
        await uow.commit()


async def test_overdue_reroutes_to_the_next_best_partner_with_a_controlled_clock(
    referral: FastAPI, nats_server: NatsServer
) -> None:
    await second_legal_partner(referral)
    sweeper = referral.state.sweeper
    opened, kept = case_opened((LEGAL,)), case_opened((LEGAL,))
    for c in (opened, kept):
        await publish(nats_server.url, c)
    [first] = await wait_referrals(referral, opened.case_id, 1)
    [other] = await wait_referrals(referral, kept.case_id, 1)
    assert first.partner_id == "hn-legal-aid"  # ranked first (by id, equal load)
    assert first.accept_by is not None
    # Three working days in Asia/Ho_Chi_Minh: at least three calendar days later.
    assert first.accept_by - first.requested_at >= timedelta(days=3)

    # The caseworker of the second case does not want automatic re-routing.
    async with client(referral) as http:
        r = await http.put(
            f"/v1/cases/{kept.case_id}/referral-settings",
            json={"auto_reroute": False},
            headers=bearer(referral, Role.CASEWORKER, province="01"),
        )
        assert r.status_code == 200, r.text

    assert await sweeper.sweep(first.accept_by - timedelta(minutes=1)) == 0  # not late yet
    assert await sweeper.sweep(max(first.accept_by, other.accept_by)) == 2  # type: ignore[type-var]
    rows = await referrals(referral, opened.case_id)
    assert [(r.partner_id, r.status, r.reason, r.rerouted_from) for r in rows] == [
        ("hn-legal-aid", "cancelled", "overdue_rerouted", None),
        ("hn-legal-clinic", "requested", None, first.id),
    ]
    assert rows[0].overdue_acceptance
    [still] = await referrals(referral, kept.case_id)
    assert (still.status, still.overdue_acceptance) == ("requested", True)
    assert await sweeper.sweep(max(first.accept_by, other.accept_by) + timedelta(days=1)) == 0  # type: ignore[type-var,operator]

    async def on_the_bus() -> list[str]:
        subjects = [s for s, _ in await referral_events(nats_server.url, opened.case_id)]
        assert subjects == [
            "osso.referral.hn-legal-aid.requested",
            "osso.referral.hn-legal-aid.overdue",
            "osso.referral.hn-legal-aid.cancelled",
            "osso.referral.hn-legal-clinic.requested",
        ]
        return subjects

    await aeventually(on_the_bus, timeout=20)

    # The new partner accepts; not completed by its deadline -> overdue again (completion stage).
    async with client(referral) as http:
        rid = rows[1].id
        r = await http.post(
            f"/v1/referrals/{rid}/transitions",
            json={"action": "accept"},
            headers=bearer(referral, Role.PARTNER, partner_id="hn-legal-clinic"),
        )
        assert r.status_code == 200, r.text
        complete_by = datetime.fromisoformat(r.json()["complete_by"])
    assert await sweeper.sweep(complete_by) == 1
    [*_, accepted] = await referrals(referral, opened.case_id)
    assert accepted.overdue_completion and accepted.status == "accepted"

    async def overdue_again() -> Event:
        events = await referral_events(nats_server.url, opened.case_id)
        assert [s for s, _ in events[-2:]] == [
            "osso.referral.hn-legal-clinic.accepted",
            "osso.referral.hn-legal-clinic.overdue",
        ]
        return events[-1][1]

    last = await aeventually(overdue_again, timeout=20)  # the outbox relay publishes after the commit
    assert orjson.loads(last.model_dump_json())["stage"] == "completion"
