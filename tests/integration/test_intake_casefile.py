"""Issue 4, intake in depth: the case file, search, duplicates, scoping, consent, lifecycle, audit
and erasure, through the HTTP API of an in-process intake against a real nats-server and a real
database: SQLite, and PostgreSQL for the ``postgres``-marked run."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from services.intake.app import MIGRATIONS, create_app
from services.intake.settings import IntakeSettings
from services.intake.store import CaseKeyRow, CaseLookupRow, CaseRow, metadata
from shared.auth import Role, mint_token
from shared.envelope import encode
from shared.events import ContactChannel, OptedOut
from shared.migrations import current_revision, head_revision
from shared.natsserver import NatsServer
from shared.runtime import Runtime
from shared.settings import BusSettings, PlatformSettings
from tests.helpers import aeventually, all_stream_messages

NAME = "Nguyễn Thị Hoà"


@dataclass
class Intake:
    app: FastAPI
    rt: Runtime
    nats_url: str
    backend: str

    def headers(
        self, role: str = "central_admin", province: str | None = None, **extra: str
    ) -> dict[str, str]:
        token = mint_token(self.rt.jwt_secret, subject=f"t-{role}", role=Role(role), province=province)
        return {"Authorization": f"Bearer {token}", **extra}

    def client(
        self, role: str = "central_admin", province: str | None = None, **extra: str
    ) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://intake",
            headers=self.headers(role, province, **extra),
        )

    async def events(self, case_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(ce-type, data) of every event about ``case_id`` on the streams."""
        out = []
        for _subject, headers, body in await all_stream_messages(self.nats_url):
            if headers.get("ce-subject") == case_id:
                out.append((headers["ce-type"], orjson.loads(body)))
        return out


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def intake(
    request: pytest.FixtureRequest, module_nats: NatsServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Intake]:
    tmp: Path = tmp_path_factory.mktemp("intake")
    url = (
        request.getfixturevalue("pg_url")
        if request.param == "postgres"
        else f"sqlite+aiosqlite:///{tmp / 'intake.db'}"
    )
    settings = IntakeSettings(
        database_url=url,
        bus=BusSettings(nats_url=module_nats.url, nak_delay=0.2, max_deliver=3),
        platform=PlatformSettings(data_dir=tmp),
    )
    app = create_app(settings)
    rt: Runtime = app.state.runtime
    await rt.start()
    yield Intake(app, rt, module_nats.url, request.param)
    await rt.stop()


def tag() -> str:
    """Letters unique to one test run, to keep names apart across runs on one database."""
    return "".join(chr(97 + int(c, 16)) for c in uuid.uuid4().hex[:6])


#: Serial numbers from a random start: never repeated within a run (random leading digits were: the
#: first digits of a random number are few, so two cases of one run shared a CCCD now and then and
#: the second was refused as a duplicate), and apart across runs on one database.
_PHONES = itertools.count(secrets.randbelow(10_000_000))
_CCCDS = itertools.count(secrets.randbelow(1_000_000))


def unique_phone() -> str:
    # 091x is a live mobile range; some other 09x ranges (095...) are not, and failed validation.
    return f"091{next(_PHONES) % 10_000_000:07d}"


def unique_cccd(year: int = 1990) -> str:
    return f"001{(year // 100 - 19) * 2}{year % 100:02d}{next(_CCCDS) % 1_000_000:06d}"


def full_case(name: str = NAME, year: int = 1990, province: str = "01", **over: Any) -> dict[str, Any]:
    body = {
        "province": province,
        "channel": "hotline",
        "needs": ["legal", "children"],
        "priorities": {"legal": "urgent"},
        "consent": {"referral": True, "sms": True, "statistics": True, "referral_categories": ["legal"]},
        "woman": {
            "full_name": name,
            "birth_year": year,
            "phones": [unique_phone()],
            "cccd": unique_cccd(year),
            "address": {"province": "Hà Nội", "line": "số 5 ngõ 7"},
        },
        "story": {
            "destination_country": "CN",
            "years_abroad": 3,
            "migration_kind": "marriage",
            "return_kind": "handed_over_border_guard",
            "trafficking_status": "identified",
            "gbv_experienced": True,
            "risk_flags": ["pursuer_active"],
            "notes": "chồng cũ vẫn tìm kiếm",
        },
        "children": [
            {"name": "Lý Bảo Na", "age": 4, "sex": "female", "nationality": "CN", "birth_registered": False}
        ],
        "contact": {
            "language": "vi",
            "channels": ["sms"],
            "safe_hours_start": "09:00",
            "safe_hours_end": "17:00",
        },
    }
    body.update(over)
    return body


async def register(intake: Intake, body: dict[str, Any], **kw: str) -> dict[str, Any]:
    async with intake.client(**kw) as c:
        r = await c.post("/v1/cases", json=body)
    assert r.status_code == 201, r.text
    return r.json()


# -- the case file -----------------------------------------------------------------------------------


async def test_full_case_file_is_stored_sealed_and_read_back(intake: Intake) -> None:
    body = full_case()
    case = await register(intake, body)
    assert case["status"] == "open" and case["province"] == "01"
    assert {"category": "legal", "priority": "urgent"} in case["assessed_needs"]
    async with intake.client() as c:
        got = (await c.get(f"/v1/cases/{case['id']}")).json()
    assert got["woman"]["full_name"] == NAME
    assert got["woman"]["cccd"] == body["woman"]["cccd"]
    assert got["woman"]["phones"][0].startswith("+84")
    assert got["woman"]["age_band"] in ("35_44", "25_34")
    assert (
        got["story"]["notes"] == "chồng cũ vẫn tìm kiếm"
        and got["story"]["trafficking_status"] == "identified"
    )
    assert got["children"][0]["name"] == "Lý Bảo Na" and got["children"][0]["birth_registered"] is False
    assert got["contact"]["safe_hours_start"] == "09:00"
    async with intake.rt.sessions() as s:
        row = await s.get(CaseRow, case["id"])
        assert row is not None and row.identity_enc
        stored = orjson.dumps(row.model_dump(mode="json")).decode()
    for secret in (NAME, "Lý Bảo Na", body["woman"]["cccd"], "ngõ 7", "tìm kiếm"):
        assert secret not in stored

    async def opened() -> dict[str, Any]:
        found = [d for t, d in await intake.events(case["id"]) if t == "vn.osso.case.opened.v1"]
        assert len(found) == 1
        return found[0]

    event = await aeventually(opened, timeout=15)
    assert event["profile"]["trafficking_status"] == "identified"
    assert event["profile"]["children_returned"] == 1
    assert event["contact"]["safe_hours_start"] == "09:00"
    assert {"category": "legal", "priority": "urgent"} in event["assessed_needs"]
    assert event["consent"]["referral_categories"] == ["legal"]


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"woman": {"cccd": "12345"}}, "cccd", "12 digits"),
        ({"woman": {"cccd": "001190012345", "birth_year": 1985}}, "cccd", "birth year"),
        ({"woman": {"cccd": "999190012345"}}, "cccd", "province code"),
        ({"woman": {"phones": ["0212345"]}}, "phones.0", "start with 03"),
        ({"province": "64", "province_scheme": "vn-2025"}, "province", "post-2025"),
        ({"province": "99", "province_scheme": "vn-legacy"}, "province", "pre-2025"),
        ({"woman": {"address": {"province": "01", "ward": "99999"}}}, "ward", "ward list"),
        ({"woman": {"full_name": "12345"}}, "full_name", "letters"),
        ({"story": {"migration_kind": "tourism"}}, "story.migration_kind", "labour"),
        ({"husband_name": "x"}, "husband_name", "not permitted"),
        ({"woman": {"nickname": "x"}}, "woman.nickname", "not permitted"),
    ],
)
async def test_bad_input_names_the_field_and_never_echoes_it(
    intake: Intake, patch: dict[str, Any], field: str, words: str
) -> None:
    body = {**full_case(), **patch}
    async with intake.client() as c:
        r = await c.post("/v1/cases", json=body)
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"] and words in r.json()["detail"], r.json()["detail"]
    for value in ("12345", "0212345", "001190012345"):
        assert value not in r.json()["detail"]


async def test_oversized_body_is_413_and_problems_speak_vietnamese(intake: Intake) -> None:
    async with intake.client() as c:
        r = await c.post(
            "/v1/cases", content=b"{" + b" " * 100_000 + b"}", headers={"content-type": "application/json"}
        )
        assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")
        vi = await c.post("/v1/cases", json={"x": 1}, headers={"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.5"})
        assert vi.status_code == 422 and vi.json()["title"] == "Yêu cầu không hợp lệ"
        assert (
            "x: trường này không được phép" in vi.json()["detail"] and vi.headers["content-language"] == "vi"
        )
        en = await c.post("/v1/cases", json={"x": 1})
        assert (
            en.json()["title"] == "Invalid request"
            and "Extra inputs are not permitted" in en.json()["detail"]
        )
        missing = await c.get("/v1/cases/nope", headers={"Accept-Language": "vi"})
        assert missing.status_code == 404 and missing.json()["title"] == "Không tìm thấy hồ sơ"


# -- search and duplicates ------------------------------------------------------------------------------


async def test_search_by_phone_cccd_and_folded_name(intake: Intake) -> None:
    surname = "Đoàn" + tag()  # unique per run, still folded like a Vietnamese name
    name = f"{surname} Thị Hòa"
    body = full_case(name=name)
    case = await register(intake, body)
    phone = body["woman"]["phones"][0]
    folded_surname = "doan" + surname[4:]
    queries = [
        phone,
        "+84" + phone[1:],
        "84" + phone[1:],
        f"{phone[:4]} {phone[4:7]} {phone[7:]}",
        body["woman"]["cccd"],
        name,
        unicodedata.normalize("NFD", name),
        name.upper(),
        f"{surname} Thị Hoà",  # the other accent placement
        f"{folded_surname} thi hoa",  # no diacritics, đ -> d
        f"  {folded_surname.upper()}   HOA ",  # words out of order, odd spacing
    ]
    async with intake.client() as c:
        for q in queries:
            r = await c.get("/v1/cases", params={"q": q})
            assert r.status_code == 200
            assert [i["id"] for i in r.json()["items"]] == [case["id"]], q
        assert r.json()["items"][0]["full_name"] == name
        assert (await c.get("/v1/cases", params={"q": f"{folded_surname} thi lan"})).json()["total"] == 0
        filtered = await c.get(
            "/v1/cases", params={"q": folded_surname, "trafficking_status": "identified", "need": "children"}
        )
        assert filtered.json()["total"] == 1
        assert (await c.get("/v1/cases", params={"q": folded_surname, "status": "closed"})).json()[
            "total"
        ] == 0


async def test_a_name_search_counts_exactly_the_cases_it_may_list(intake: Intake) -> None:
    """A name-only search counts from the keyed hashes, not the case rows: the count must still be
    the cases listed, per province scope, without erased ones, with several words and filters."""
    word = "Khúc" + tag()
    folded = "khuc" + word[4:]
    made = {
        province: [
            await register(intake, full_case(name=f"{word} Thị {given}", year=1980 + n, province=province))
            for n, given in enumerate(["Lan", "Mai", "Hoà"])
        ]
        for province in ("01", "92")
    }
    async with intake.client("supervisor", "92") as boss:
        assert (await boss.delete(f"/v1/cases/{made['92'][0]['id']}")).status_code == 204
    checks = [
        (("central_admin", None), {"q": folded}, 5),
        (("central_admin", None), {"q": f"{folded} thi"}, 5),
        (("central_admin", None), {"q": f"{folded} lan"}, 1),  # 92's Lan is erased
        (("central_admin", None), {"q": folded, "province": "92"}, 2),
        (("caseworker", "01"), {"q": folded}, 3),
        (("caseworker", "01"), {"q": f"{folded} mai"}, 1),
        (("caseworker", "92"), {"q": f"{word} Thị Hòa"}, 1),  # the whole name
        (("caseworker", "01"), {"q": folded, "status": "closed"}, 0),
    ]
    for (role, province), params, n in checks:
        async with intake.client(role, province) as c:
            page = (await c.get("/v1/cases", params={**params, "limit": 100})).json()
        assert page["total"] == len(page["items"]) == n, (role, province, params)
    async with intake.client() as c:  # a page shorter than the total
        page = (await c.get("/v1/cases", params={"q": folded, "limit": 2})).json()
    assert page["total"] == 5 and len(page["items"]) == 2


async def test_duplicates_are_reported_with_visible_ids_and_never_merged(intake: Intake) -> None:
    body = full_case(name="Trần Thị Mai " + tag(), year=1988)
    first = await register(intake, body)
    # Same CCCD: 409 with the candidate, nothing created.
    again = {**body, "channel": "walk_in"}
    async with intake.client() as c:
        r = await c.post("/v1/cases", json=again)
        assert r.status_code == 409 and r.json()["candidates"][0]["case_id"] == first["id"]
        assert "cccd" in r.json()["candidates"][0]["matched_on"]
        # Same folded name and birth year in the province, typed differently, other CCCD and phone.
        woman = {**body["woman"], "full_name": body["woman"]["full_name"].upper(), "cccd": unique_cccd(1988)}
        woman["phones"] = [unique_phone()]
        r = await c.post("/v1/cases", json={**body, "woman": woman})
        assert r.status_code == 409 and r.json()["candidates"][0]["matched_on"] == ["name_year"]
        # The caseworker decides: confirmed, a second case exists; the first is untouched.
        r = await c.post("/v1/cases", json={**body, "woman": woman, "confirm_not_duplicate": True})
        assert r.status_code == 201 and r.json()["id"] != first["id"]
        # A shared phone alone is reported but does not block.
        other = full_case(name="Lê Thị Lan " + tag())
        other["woman"]["phones"] = body["woman"]["phones"]
        r = await c.post("/v1/cases", json=other)
        assert r.status_code == 201
        assert {"case_id": first["id"], "matched_on": ["phone"]} in r.json()["possible_duplicates"]
    # A caseworker of another province never learns that the CCCD exists in Hà Nội.
    elsewhere = {**body, "province": "92", "woman": {**body["woman"], "address": None}}
    async with intake.client("caseworker", "92") as c:
        r = await c.post("/v1/cases", json=elsewhere)
        assert r.status_code == 201 and r.json()["possible_duplicates"] == []


def _group_commits() -> tuple[float, float]:
    """(transactions, registrations) written by intake's group commit so far, in this process."""
    labels = {"service": "intake", "writer": "registrations"}
    count = REGISTRY.get_sample_value("osso_group_commit_items_count", labels) or 0.0
    total = REGISTRY.get_sample_value("osso_group_commit_items_sum", labels) or 0.0
    return count, total


async def test_registrations_written_together_still_catch_each_other(intake: Intake) -> None:
    """Registrations that wait together share one transaction (group commit). Eight for the same
    woman in that one batch: one is created and seven are refused with its id, exactly as if they
    had come one after the other; the other registrations of the batch are all written."""
    same = full_case(name="Phạm Thị Yến " + tag(), year=1991)
    others = [full_case(name="Vũ Thị Lan " + tag()) for _ in range(15)]
    before = _group_commits()
    async with intake.rt.uow() as holder, intake.client() as c:
        # Hold the writer, so that the first registration's transaction waits and the rest queue.
        if intake.backend == "postgres":
            await holder.session.execute(text("LOCK TABLE case_lookups IN ACCESS EXCLUSIVE MODE"))
        else:
            await holder.session.execute(text("SELECT 1"))  # takes SQLite's only writer connection
        first = asyncio.create_task(c.post("/v1/cases", json=others[0]))
        await asyncio.sleep(0.3)
        rest = [asyncio.create_task(c.post("/v1/cases", json=b)) for b in [same] * 8 + others[1:]]
        await asyncio.sleep(0.5)
        await holder.session.rollback()  # let them through
        responses = [await first] + [await t for t in rest]
    count, total = (a - b for a, b in zip(_group_commits(), before, strict=True))
    assert (count, total) == (2, 23), "the first alone, then the 22 that waited, together"
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1 + 1 + 14 and statuses.count(409) == 7
    created = [r.json()["id"] for r in responses[1:9] if r.status_code == 201]
    assert len(created) == 1
    for r in responses[1:9]:
        if r.status_code == 409:
            assert [c["case_id"] for c in r.json()["candidates"]] == created
    # Every created case is there once, with its lookups; the refused ones left nothing behind.
    async with intake.client() as c:
        found = (await c.get("/v1/cases", params={"q": same["woman"]["cccd"]})).json()
        assert [item["id"] for item in found["items"]] == created


async def test_caseworker_of_01_cannot_read_search_or_count_a_case_of_92(intake: Intake) -> None:
    body = full_case(name="Phạm Thị Yến " + tag(), province="92")
    body["woman"]["address"] = None
    case = await register(intake, body, role="caseworker", province="92")
    q = body["woman"]["full_name"]
    async with intake.client("caseworker", "01") as hanoi, intake.client("supervisor", "01") as boss:
        assert (await hanoi.get(f"/v1/cases/{case['id']}")).status_code == 404
        for params in (
            {"q": q},
            {"q": body["woman"]["cccd"]},
            {"q": body["woman"]["phones"][0]},
            {"province": "92"},
        ):
            r = await hanoi.get("/v1/cases", params=params)
            assert r.status_code == 200 and r.json()["total"] == 0 and r.json()["items"] == [], params
        for method, path, payload in [
            ("PATCH", "", {"contact": {"do_not_contact": True}}),
            (
                "POST",
                "/sessions",
                {
                    "held_on": "2026-01-05",
                    "channel": "hotline",
                    "topics": ["legal"],
                    "duration_minutes": 5,
                    "counsellor": "x",
                },
            ),
            ("PUT", "/consents", {"sms": False}),
            ("POST", "/needs", {"needs": [{"category": "legal"}]}),
            ("POST", "/close", {"reason": "resolved"}),
            ("GET", "/sessions", None),
            ("GET", "/consents", None),
        ]:
            r = await hanoi.request(method, f"/v1/cases/{case['id']}{path}", json=payload)
            assert r.status_code == 404, (method, path, r.text)
        assert (await boss.get("/v1/audit", params={"case_id": case["id"]})).status_code == 404
        assert (await boss.delete(f"/v1/cases/{case['id']}")).status_code == 404
    async with intake.client("caseworker", "92") as cantho:
        assert (await cantho.get("/v1/cases", params={"q": q})).json()["total"] == 1
        assert (await cantho.get(f"/v1/cases/{case['id']}")).status_code == 200


# -- consent, needs, sessions, lifecycle ------------------------------------------------------------------


async def test_lifecycle_sessions_needs_and_consent_are_events(intake: Intake) -> None:
    case = await register(intake, full_case(name="Võ Thị Hạnh " + tag()))
    cid = case["id"]
    async with intake.client("caseworker", "01") as c:
        s = await c.post(
            f"/v1/cases/{cid}/sessions",
            json={
                "held_on": date.today().isoformat(),
                "channel": "online",
                "topics": ["legal", "psychological"],
                "duration_minutes": 45,
                "counsellor": "cw-07",
                "notes": "ghi chú riêng",
            },
        )
        assert s.status_code == 201, s.text
        assert (await c.get(f"/v1/cases/{cid}")).json()["status"] == "active"
        r = await c.post(
            f"/v1/cases/{cid}/needs", json={"needs": [{"category": "livelihood", "priority": "high"}]}
        )
        assert {"category": "livelihood", "priority": "high"} in r.json()["assessed_needs"]
        r = await c.put(f"/v1/cases/{cid}/consents", json={"sms": False, "statistics": False})
        assert r.json()["consent"]["sms"] is False and r.json()["consent"]["statistics"] is False
        history = (await c.get(f"/v1/cases/{cid}/consents")).json()
        assert {(h["purpose"], h["granted"], h["recorded_by"]) for h in history} >= {
            ("sms", True, "central_admin"),
            ("sms", False, "caseworker"),
        }
        assert all(h["actor"] and h["at"] for h in history)
        assert (await c.post(f"/v1/cases/{cid}/close", json={"reason": "gossip"})).status_code == 422
        assert (await c.post(f"/v1/cases/{cid}/close", json={"reason": "resolved"})).json()[
            "status"
        ] == "closed"
        late = await c.post(
            f"/v1/cases/{cid}/sessions",
            json={
                "held_on": date.today().isoformat(),
                "channel": "hotline",
                "topics": ["legal"],
                "duration_minutes": 5,
                "counsellor": "cw-07",
            },
        )
        assert late.status_code == 409
        assert (await c.post(f"/v1/cases/{cid}/close", json={"reason": "resolved"})).status_code == 409
        assert (await c.post(f"/v1/cases/{cid}/reopen")).json()["status"] == "active"
        r = await c.patch(
            f"/v1/cases/{cid}",
            json={"story": {"trafficking_status": "suspected"}, "contact": {"do_not_contact": True}},
        )
        assert r.status_code == 200 and r.json()["contact"]["do_not_contact"] is True

    expected = {
        "vn.osso.case.opened.v1", "vn.osso.case.session_recorded.v1", "vn.osso.case.status_changed.v1",
        "vn.osso.case.needs_assessed.v1", "vn.osso.case.consent_changed.v1", "vn.osso.case.updated.v1",
    }  # fmt: skip

    async def all_events() -> list[tuple[str, dict[str, Any]]]:
        events = await intake.events(cid)
        assert {t for t, _ in events} >= expected
        return events

    events = await aeventually(all_events, timeout=15)
    moves = [
        (d["from_status"], d["to_status"], d["reason"], d["reopened"])
        for t, d in events
        if t.endswith("status_changed.v1")
    ]
    assert moves == [
        ("open", "active", None, False),
        ("active", "closed", "resolved", False),
        ("closed", "active", None, True),
    ]
    [session] = [d for t, d in events if t.endswith("session_recorded.v1")]
    assert session["duration_minutes"] == 45 and session["channel"] == "online"
    [updated] = [d for t, d in events if t.endswith("updated.v1")]
    assert (
        updated["profile"]["trafficking_status"] == "suspected"
        and updated["contact"]["do_not_contact"] is True
    )
    assert all("ghi chú" not in orjson.dumps(d).decode() for _, d in events)


async def test_opt_out_reply_withdraws_sms_consent_once(intake: Intake) -> None:
    case = await register(intake, full_case(name="Hồ Thị Thu " + tag()))
    cid = case["id"]
    event = OptedOut(case_id=cid, province="01", channel=ContactChannel.SMS, at=datetime.now(UTC))
    message = encode(event)
    nc = await nats.connect(intake.nats_url)
    js = nc.jetstream()
    await js.publish(message.subject, message.body, headers=message.headers)
    # Re-published with another message id but the same event id: applied once (inbox).
    await js.publish(
        message.subject, message.body, headers={**message.headers, "Nats-Msg-Id": "other-" + cid}
    )
    await nc.close()

    async with intake.client() as c:

        async def withdrawn() -> list[dict[str, Any]]:
            history = (await c.get(f"/v1/cases/{cid}/consents")).json()
            outs = [h for h in history if h["recorded_by"] == "sms_opt_out"]
            assert outs
            return outs

        outs = await aeventually(withdrawn, timeout=15)
        assert len(outs) == 1 and outs[0]["purpose"] == "sms" and outs[0]["granted"] is False
        assert (await c.get(f"/v1/cases/{cid}")).json()["consent"]["sms"] is False

    async def changed() -> list[dict[str, Any]]:
        found = [d for t, d in await intake.events(cid) if t.endswith("consent_changed.v1")]
        assert found
        return found

    found = await aeventually(changed, timeout=15)
    assert [(d["purpose"], d["granted"], d["recorded_by"]) for d in found] == [("sms", False, "sms_opt_out")]


# -- audit and erasure ------------------------------------------------------------------------------------


async def test_audit_log_records_reads_and_cannot_be_edited(intake: Intake) -> None:
    case = await register(intake, full_case(name="Mai Thị Vân " + tag()), role="caseworker", province="01")
    cid = case["id"]
    async with intake.client("caseworker", "01") as cw, intake.client("supervisor", "01") as boss:
        await cw.get(f"/v1/cases/{cid}")
        await cw.get("/v1/cases", params={"q": "mai thi van"})
        assert (await cw.get("/v1/audit", params={"case_id": cid})).status_code == 403
        log = (await boss.get("/v1/audit", params={"case_id": cid})).json()
    actions = [(r["action"], r["actor"], r["purpose"]) for r in log]
    assert ("create", "caseworker:t-caseworker", "registration") in actions
    assert ("read", "caseworker:t-caseworker", "case_view") in actions
    assert "full_name" in log[0]["fields"] and all(r["at"] for r in log)
    async with intake.client() as c:
        assert (await c.request("PATCH", "/v1/audit", json={})).status_code == 405
    async with intake.rt.engine.connect() as conn:
        with pytest.raises(DBAPIError):
            await conn.execute(text("UPDATE audit_log SET actor = 'someone' WHERE case_id = :c"), {"c": cid})
        await conn.rollback()
        with pytest.raises(DBAPIError):
            await conn.execute(text("DELETE FROM audit_log WHERE case_id = :c"), {"c": cid})
        await conn.rollback()


async def test_erasure_shreds_her_data_and_tells_the_platform(intake: Intake) -> None:
    body = full_case(name="Đinh Thị Loan " + tag())
    case = await register(intake, body)
    cid = case["id"]
    async with intake.client("caseworker", "01") as cw:
        assert (await cw.delete(f"/v1/cases/{cid}")).status_code == 403
    async with intake.client("supervisor", "01") as boss:
        assert (await boss.delete(f"/v1/cases/{cid}")).status_code == 204
        assert (await boss.get(f"/v1/cases/{cid}")).status_code == 410
        assert (await boss.delete(f"/v1/cases/{cid}")).status_code == 410
        assert (await boss.get("/v1/cases", params={"q": body["woman"]["cccd"]})).json()["total"] == 0
        assert (await boss.get("/v1/cases", params={"q": body["woman"]["full_name"]})).json()["total"] == 0
        assert [r["action"] for r in (await boss.get("/v1/audit", params={"case_id": cid})).json()][
            -1
        ] == "erase"
    service = mint_token(intake.rt.jwt_secret, subject="notification", role=Role.SERVICE)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=intake.app), base_url="http://intake"
    ) as c:
        r = await c.get(
            f"/internal/v1/cases/{cid}/contact",
            params={"purpose": "sms_follow_up"},
            headers={"Authorization": f"Bearer {service}"},
        )
        assert r.status_code == 410
    async with intake.rt.sessions() as s:
        assert await s.get(CaseKeyRow, cid) is None
        assert (await s.execute(select(CaseLookupRow).where(CaseLookupRow.case_id == cid))).first() is None  # type: ignore[arg-type]
        row = await s.get(CaseRow, cid)
        assert row is not None and row.identity_enc is None and row.erased_at is not None
        assert row.province == "01" and row.needs  # categories stay: the aggregates stay right

    async def erased() -> bool:
        return any(t == "vn.osso.case.erased.v1" for t, _ in await intake.events(cid))

    await aeventually(erased, timeout=15)


async def test_contact_endpoint_gives_notification_the_rules(intake: Intake) -> None:
    case = await register(intake, full_case(name="Tạ Thị Quế " + tag()))
    service = mint_token(intake.rt.jwt_secret, subject="notification", role=Role.SERVICE)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=intake.app),
        base_url="http://intake",
        headers={"Authorization": f"Bearer {service}"},
    ) as c:
        body = (
            await c.get(f"/internal/v1/cases/{case['id']}/contact", params={"purpose": "sms_follow_up"})
        ).json()
    assert body["phone"].startswith("+84") and body["sms_consent"] is True
    assert (body["safe_hours_start"], body["safe_hours_end"], body["language"]) == ("09:00", "17:00", "vi")
    assert body["do_not_contact"] is False and body["channels"] == ["sms"]
    async with intake.client("caseworker", "01") as cw:
        assert (
            await cw.get(f"/internal/v1/cases/{case['id']}/contact", params={"purpose": "x"})
        ).status_code == 403


async def test_community_activities_are_recorded_and_published(intake: Intake) -> None:
    async with intake.client("caseworker", "31") as c:
        r = await c.post(
            "/v1/activities",
            json={
                "province": "Hải Dương",
                "kind": "training",
                "held_on": "2026-10-02",
                "topics": ["legal"],
                "participants": [
                    {"sex": "female", "role": "official", "count": 12},
                    {"sex": "male", "role": "official", "count": 8},
                    {"sex": "female", "role": "official", "count": 3},
                ],
            },
        )
        assert r.status_code == 201, r.text
        activity = r.json()
        assert activity["province"] == "31" and activity["total_participants"] == 23
        assert (
            await c.post(
                "/v1/activities",
                json={
                    "province": "01",
                    "kind": "outreach",
                    "held_on": "2026-10-02",
                    "participants": [{"sex": "female", "role": "official", "count": 1}],
                },
            )
        ).status_code == 403
        listed = (await c.get("/v1/activities", params={"kind": "training"})).json()
        assert activity["id"] in [a["id"] for a in listed]

    async def published() -> bool:
        msgs = await all_stream_messages(intake.nats_url)
        return any(
            h.get("ce-subject") == activity["id"] and s == "osso.activity.31.recorded" for s, h, _ in msgs
        )

    await aeventually(published, timeout=15)


# -- migrations --------------------------------------------------------------------------------------------


async def test_migrations_are_at_head_and_match_the_models(intake: Intake) -> None:
    assert await current_revision(intake.rt.engine) == head_revision(MIGRATIONS)

    def diff(conn: Any) -> list[Any]:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)

    async with intake.rt.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
