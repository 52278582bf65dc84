"""Referral's HTTP API in-process (real SQLite, real nats-server): the partner API scoped to its own
referrals, 409 listing the allowed transitions, notes, her details through intake (audited, and a
clear 503/502 when intake is down or wrong), manual referral and re-routing by a caseworker, and
the directory admin (HSDS import all-or-nothing, export, PartnerChanged on every change)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlmodel import select

from deploy.runner import DEMO_PARTNERS
from services.referral.intake_client import IntakeDetails
from services.referral.store import DetailsAccessRow, PartnerOrgRow
from shared.auth import Role
from shared.envelope import decode
from shared.natsserver import NatsServer
from tests.helpers import aeventually, all_stream_messages
from tests.integration.test_delivery_guarantees import publish
from tests.integration.test_referral_loop_bus import (
    LEGAL,
    PSY,
    bearer,
    case_opened,
    client,
    referral_app,
    wait_referrals,
)


@pytest.fixture
async def referral(tmp_path: Path, nats_server: NatsServer) -> AsyncIterator[FastAPI]:
    app = referral_app(tmp_path, nats_server.url, intake_url="http://127.0.0.1:9")  # nothing listens
    await app.state.runtime.start()
    try:
        yield app
    finally:
        await app.state.runtime.stop()


def partner(app: FastAPI, pid: str) -> dict[str, str]:
    return bearer(app, Role.PARTNER, partner_id=pid)


async def test_partner_api_scoped_loop_409_notes(referral: FastAPI, nats_server: NatsServer) -> None:
    opened = case_opened((LEGAL, PSY))
    await publish(nats_server.url, opened)
    rows = await wait_referrals(referral, opened.case_id, 2)
    legal = next(r for r in rows if r.category == "legal")
    a, b = partner(referral, "hn-legal-aid"), partner(referral, "hn-peaceful-house")
    async with client(referral) as http:
        mine = (await http.get("/v1/referrals", headers=a, params={"partner_id": "hn-peaceful-house"})).json()
        assert {r["partner_id"] for r in mine} == {"hn-legal-aid"}  # its own, whatever it asks for
        assert (await http.get(f"/v1/referrals/{legal.id}", headers=b)).status_code == 404
        assert (
            await http.post(f"/v1/referrals/{legal.id}/transitions", json={"action": "accept"}, headers=b)
        ).status_code == 404
        assert (await http.get(f"/v1/referrals/{legal.id}/notes", headers=b)).status_code == 404
        got = (await http.get(f"/v1/referrals/{legal.id}", headers=a)).json()
        assert got["status"] == "requested" and got["allowed_actions"] == ["accept", "reject", "hold"]
        assert "phone" not in got and "name" not in got  # never the case file

        # Illegal: complete a requested referral -> 409 listing the allowed transitions.
        r = await http.post(
            f"/v1/referrals/{legal.id}/transitions", json={"action": "complete", "outcome": "done"}, headers=a
        )
        assert r.status_code == 409, r.text
        body = r.json()
        assert body["allowed"] == ["accept", "reject", "hold", "cancel"]
        assert body["allowed_for_you"] == ["accept", "reject", "hold"] and body["status_now"] == "requested"
        # A partner may not cancel (the caseworker's side does): 403, the step itself is legal.
        assert (
            await http.post(
                f"/v1/referrals/{legal.id}/transitions", json={"action": "cancel", "reason": "x"}, headers=a
            )
        ).status_code == 403
        # A reason is a code, not prose; a rejection needs one.
        r = await http.post(f"/v1/referrals/{legal.id}/transitions", json={"action": "reject"}, headers=a)
        assert r.status_code == 422 and "reason" in r.json()["detail"]
        r = await http.post(
            f"/v1/referrals/{legal.id}/transitions",
            json={"action": "reject", "reason": "She is busy"},
            headers=a,
        )
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"

        for step in ({"action": "accept"}, {"action": "start"}):
            r = await http.post(f"/v1/referrals/{legal.id}/transitions", json=step, headers=a)
            assert r.status_code == 200, r.text
        assert r.json()["status"] == "in_progress"
        r = await http.post(
            f"/v1/referrals/{legal.id}/notes", json={"text": "Gọi lại lần 2, hẹn thứ Hai"}, headers=a
        )
        assert r.status_code == 201
        notes = (await http.get(f"/v1/referrals/{legal.id}/notes", headers=a)).json()
        assert [n["text"] for n in notes] == ["Gọi lại lần 2, hẹn thứ Hai"]
        r = await http.post(
            f"/v1/referrals/{legal.id}/transitions",
            json={"action": "complete", "outcome": "legal_aid_given"},
            headers=a,
        )
        assert r.json()["status"] == "completed" and r.json()["allowed_actions"] == []
        r = await http.post(
            f"/v1/referrals/{legal.id}/transitions", json={"action": "fail", "reason": "x"}, headers=a
        )
        assert r.status_code == 409 and r.json()["allowed"] == []

        # Caseworkers see their province only.
        assert (
            await http.get(f"/v1/referrals/{legal.id}", headers=bearer(referral, Role.CASEWORKER, "31"))
        ).status_code == 404
        assert (
            await http.get(f"/v1/referrals/{legal.id}", headers=bearer(referral, Role.CASEWORKER, "01"))
        ).status_code == 200

    async def on_the_bus() -> list[str]:
        subjects = [
            s for s, _h, body in await all_stream_messages(nats_server.url) if legal.id.encode() in body
        ]
        assert subjects == [
            f"osso.referral.hn-legal-aid.{e}"
            for e in ("requested", "accepted", "in_progress", "note_added", "completed")
        ]
        return subjects

    await aeventually(on_the_bus, timeout=20)
    # The note's text never travels on the bus.
    assert not any("Gọi lại".encode() in body for _s, _h, body in await all_stream_messages(nats_server.url))


async def test_her_details_through_intake_audited_and_degrading(
    referral: FastAPI, nats_server: NatsServer
) -> None:
    opened = case_opened((LEGAL,))
    await publish(nats_server.url, opened)
    [row] = await wait_referrals(referral, opened.case_id, 1)
    a = partner(referral, "hn-legal-aid")
    async with client(referral) as http:
        r = await http.get(f"/v1/referrals/{row.id}/her-details", headers=a)
        assert r.status_code == 409  # not before accepting
        await http.post(f"/v1/referrals/{row.id}/transitions", json={"action": "accept"}, headers=a)
        # Intake down: a clear 503 problem.
        r = await http.get(f"/v1/referrals/{row.id}/her-details", headers=a)
        assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["title"] == "Intake unavailable"
        assert (
            await http.get(
                f"/v1/referrals/{row.id}/her-details", headers=bearer(referral, Role.CASEWORKER, "01")
            )
        ).status_code == 403

        seen: list[httpx.Request] = []

        def intake(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            if request.url.params.get("partner_category") != "legal":
                return httpx.Response(500)
            return httpx.Response(
                200,
                json={"case_id": opened.case_id, "fields": {"first_name": "Hòa", "phone": "+84912345678"}},
            )

        referral.state.intake = IntakeDetails("http://intake", "t", transport=httpx.MockTransport(intake))
        r = await http.get(f"/v1/referrals/{row.id}/her-details", headers=a)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "referral_id": row.id,
            "fields": {"first_name": "Hòa", "phone": "+84912345678"},
            "do_not_contact": False,
        }
        [req] = seen
        assert req.url.path == f"/internal/v1/cases/{opened.case_id}/shared"
        assert dict(req.url.params) == {
            "partner_category": "legal", "purpose": "referral", "partner_id": "hn-legal-aid", "referral_id": row.id
        }  # fmt: skip
        assert req.headers["x-osso-on-behalf-of"] == "partner:hn-legal-aid"

    async with referral.state.runtime.sessions() as session:
        audit = (
            (await session.execute(select(DetailsAccessRow).order_by(DetailsAccessRow.id))).scalars().all()
        )  # type: ignore[arg-type]
    assert [(x.actor, x.result, x.fields) for x in audit] == [
        ("partner:test-partner", "http_503", ""),
        ("partner:test-partner", "ok", "first_name,phone"),  # field names only, never values
    ]


async def test_manual_referral_and_reroute_by_a_caseworker(
    referral: FastAPI, nats_server: NatsServer
) -> None:
    opened = case_opened((PSY,))
    await publish(nats_server.url, opened)
    [first] = await wait_referrals(referral, opened.case_id, 1)
    cw = bearer(referral, Role.CASEWORKER, "01")
    async with client(referral) as http:
        ranked = (
            await http.get(
                "/v1/matches", params={"case_id": opened.case_id, "category": "livelihood"}, headers=cw
            )
        ).json()
        assert [m["partner_id"] for m in ranked] == ["hn-vbsp", "hn-vocational"]
        r = await http.post(
            "/v1/referrals",
            json={"case_id": opened.case_id, "category": "livelihood", "partner_id": "hn-vocational"},
            headers=cw,
        )
        assert r.status_code == 201, r.text
        assert r.json()["manual"] is True and r.json()["partner_id"] == "hn-vocational"
        r = await http.post(
            "/v1/referrals",
            json={"case_id": opened.case_id, "category": "legal", "partner_id": "hp-legal-aid"},
            headers=cw,
        )
        assert (
            r.status_code == 422 and "partner_id" in r.json()["detail"]
        )  # Hải Phòng's partner does not serve 01
        other = bearer(referral, Role.CASEWORKER, "31")
        r = await http.post(
            "/v1/referrals",
            json={"case_id": opened.case_id, "category": "legal", "partner_id": "hn-legal-aid"},
            headers=other,
        )
        assert r.status_code == 404
        # Re-route the psychological referral: no other partner in 01 offers it -> 409, unchanged.
        r = await http.post(f"/v1/referrals/{first.id}/reroute", json={}, headers=cw)
        assert r.status_code == 409
        r = await http.post(
            f"/v1/referrals/{first.id}/transitions",
            json={"action": "cancel", "reason": "she_moved"},
            headers=cw,
        )
        assert r.status_code == 200 and r.json()["status"] == "cancelled"


async def test_directory_admin_import_is_all_or_nothing_and_every_change_is_an_event(
    referral: FastAPI, nats_server: NatsServer
) -> None:
    admin = bearer(referral, Role.CENTRAL_ADMIN)
    doc = orjson.loads(DEMO_PARTNERS.read_bytes())
    async with client(referral) as http:
        assert (
            await http.post(
                "/v1/admin/directory/import", json=doc, headers=bearer(referral, Role.CASEWORKER, "01")
            )
        ).status_code == 403
        exported = (await http.get("/v1/admin/directory/export", headers=admin)).json()
        assert {o["id"] for o in exported["organization"]} == {o["id"] for o in doc["organization"]}

        bad = copy.deepcopy(doc)
        bad["organization"].append({"id": "new-partner", "name": "Mới"})
        bad["service"].append(
            {"id": "new-svc", "organization_id": "new-partner", "name": "x", "status": "open"}
        )
        bad["service_area"][0]["extent"] = "77"
        r = await http.post("/v1/admin/directory/import", json=bad, headers=admin)
        assert r.status_code == 422, r.text
        assert len(r.json()["errors"]) >= 2 and "nothing was imported" in r.json()["detail"]
        async with referral.state.runtime.sessions() as session:
            assert await session.get(PartnerOrgRow, "new-partner") is None

        good = copy.deepcopy(doc)
        good["organization"].append({"id": "new-partner", "name": "Đối tác mới"})
        good["service"].append(
            {"id": "new-svc", "organization_id": "new-partner", "name": "Tư vấn", "status": "active"}
        )
        good["service_area"].append(
            {"id": "new-area", "service_id": "new-svc", "extent_type": "vn-legacy-province", "extent": "30"}
        )
        good["attribute"].append(
            {"id": "new-attr", "link_id": "new-svc", "taxonomy_term_id": "osso-legal_aid"}
        )
        r = await http.post("/v1/admin/directory/import", json=good, headers=admin)
        assert r.status_code == 200 and r.json()["created"] == 1
        r = await http.post(
            "/v1/admin/partners/new-partner/status", json={"status": "inactive"}, headers=admin
        )
        assert r.status_code == 200 and r.json()["active"] is False and r.json()["provinces"] == ["31"]
        listed = (await http.get("/v1/partners", params={"province": "31"})).json()
        assert {"hp-legal-aid", "new-partner"} <= {p["id"] for p in listed}

    async def changes() -> list[str]:
        found = [
            decode(h, b).data.change  # type: ignore[attr-defined]
            for s, h, b in await all_stream_messages(nats_server.url)
            if s == "osso.partner.new-partner.changed"
        ]
        assert found == ["created", "deactivated"]
        return found

    await aeventually(changes, timeout=20)
