"""Issue 6 against a real database (SQLite file, and PostgreSQL for the ``postgres`` run), a real
HTTP intake stand-in and real providers, with a controlled clock: every plan trigger, every
cancellation, quiet hours, languages and encodings, provider failures, a crash between the
provider's acceptance and our record of it, two dispatchers sharing one database, and the
receipt and opt-out webhooks."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notification import api
from services.notification.dispatcher import Dispatcher, IntakeContacts
from services.notification.handlers import FollowUpPlanner, apply_case_event
from services.notification.plans import load_plans
from services.notification.providers import FileProvider, HttpProvider, SendResult, SmsProvider
from services.notification.settings import NotificationSettings
from services.notification.store import ContactProfileRow, FollowUpRow, metadata
from services.notification.templates import default_templates
from services.notification.webhooks import WebhookAuth, sign
from shared.crypto import BlindIndex
from shared.db import create_schema
from shared.envelope import Envelope
from shared.events import (
    CaseErased,
    CaseOpened,
    CaseStatus,
    CaseStatusChanged,
    CaseUpdated,
    ConsentChanged,
    ConsentPurpose,
    ConsentSnapshot,
    ContactChannel,
    ContactPreferences,
    Event,
    ReferralAccepted,
    ReferralCancelled,
    ReferralCompleted,
    ReferralRequested,
)
from shared.http import install_problem_handlers
from shared.runtime import Runtime
from shared.settings import PlatformSettings
from shared.vocab import Channel, ServiceCategory
from tests.integration.notification_fakes import API_KEY, Intake, gateway, intake

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
MORNING = datetime(2026, 11, 23, 10, 0, tzinfo=HCM)  # 10:00 in Vietnam: inside the default safe hours
SECRET = "test-webhook-secret-0123456789"
PHONE_KEY = b"test-phone-hash-key-0123456789ab"


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **kw: float) -> None:
        self.at += timedelta(**kw)


@dataclass
class Service:
    """Notification's parts, in this process, on one database: planner, case handler, dispatcher."""

    rt: Runtime
    settings: NotificationSettings
    clock: Clock
    intake: Intake
    outbox_file: Path
    dispatchers: list[Dispatcher] = field(default_factory=list)

    def dispatcher(self, provider: SmsProvider | None = None, worker: str = "w1") -> Dispatcher:
        d = Dispatcher(
            self.rt,
            self.settings,
            provider or FileProvider(self.outbox_file),
            IntakeContacts(self.intake.url, "service-token"),
            default_templates(),
            BlindIndex(PHONE_KEY),
            clock=self.clock,
            worker=worker,
        )
        self.dispatchers.append(d)
        return d

    @property
    def planner(self) -> FollowUpPlanner:
        plans = load_plans(self.settings.plan_file)
        return FollowUpPlanner(plans, self.settings, self.clock)

    async def apply(self, *events: Event) -> None:
        planner = self.planner
        for event in events:
            env = Envelope(str(uuid.uuid4()), event.TYPE, event.SOURCE, "", event.ce_subject(), event)
            async with self.rt.uow() as uow:
                if event.subject().startswith("osso.case."):
                    await apply_case_event(uow, env)
                elif isinstance(event, ReferralRequested):
                    await planner.apply_referral_requested(uow, env)
                else:
                    await planner.apply_referral_event(uow, env)
                await uow.commit()

    async def rows(self, case_id: str) -> list[FollowUpRow]:
        async with self.rt.sessions() as s:
            q = select(FollowUpRow).where(FollowUpRow.case_id == case_id).order_by(FollowUpRow.due_at)
            return list((await s.execute(q)).scalars())

    async def events(self, case_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Events written to the outbox (type suffix, data), in order."""
        t = self.rt.tables.outbox
        async with self.rt.sessions() as s:
            out = []
            for subject, body in (await s.execute(select(t.c.subject, t.c.body).order_by(t.c.id))).all():
                data = orjson.loads(body)
                if case_id is None or data.get("case_id") == case_id:
                    out.append((subject.rsplit(".", 1)[1], data))
            return out

    def sent_lines(self) -> list[dict[str, Any]]:
        if not self.outbox_file.exists():
            return []
        return [orjson.loads(x) for x in self.outbox_file.read_bytes().splitlines() if x]

    async def drain(self, d: Dispatcher | None = None) -> None:
        d = d or (self.dispatchers[0] if self.dispatchers else self.dispatcher())
        while await d.dispatch_due():
            pass


async def make_service(tmp: Path, fake_intake: Intake, url: str | None = None, **settings: Any) -> Service:
    tmp.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test setup
    s = NotificationSettings(
        database_url=url or f"sqlite+aiosqlite:///{tmp / 'notification.db'}",
        platform=PlatformSettings(data_dir=tmp),
        **settings,
    )
    rt = Runtime("notification", s, metadata)
    await create_schema(rt.engine, metadata)
    return Service(rt, s, Clock(MORNING), fake_intake, tmp / "sms-outbox.jsonl")


@pytest.fixture
async def fake_intake() -> AsyncIterator[Intake]:
    async with intake() as fake:
        yield fake


@pytest.fixture
async def svc(tmp_path: Path, fake_intake: Intake) -> AsyncIterator[Service]:
    service = await make_service(tmp_path, fake_intake)
    yield service
    for d in service.dispatchers:
        await d.provider.close()
        await d.contacts.close()
    await service.rt.engine.dispose()


def opened(case_id: str, *, sms: bool = True, **contact: Any) -> CaseOpened:
    return CaseOpened(
        case_id=case_id,
        province="01",
        channel=Channel.WALK_IN,
        needs=[ServiceCategory.LEGAL],
        consent=ConsentSnapshot(referral=True, sms=sms),
        opened_at=MORNING,
        contact=ContactPreferences(**contact) if contact else None,
    )


def requested(case_id: str, referral_id: str = "r1") -> ReferralRequested:
    return ReferralRequested(
        referral_id=referral_id,
        case_id=case_id,
        partner_id="hn-legal-aid",
        province="01",
        category=ServiceCategory.LEGAL,
        requested_at=MORNING,
    )


def referral_kw(case_id: str, referral_id: str = "r1") -> dict[str, Any]:
    return {
        "referral_id": referral_id,
        "case_id": case_id,
        "partner_id": "hn-legal-aid",
        "province": "01",
        "category": ServiceCategory.LEGAL,
        "at": MORNING,
    }


def new_case() -> str:
    return str(uuid.uuid4())


# -- plan triggers, end to end through the database and the file provider ------------------------------


async def test_referral_requested_checks_in_two_days_later(svc: Service) -> None:
    case = new_case()
    await svc.apply(opened(case), requested(case))
    [row] = await svc.rows(case)
    assert (row.template, row.status, row.due_at) == (
        "referral_checkin",
        "scheduled",
        svc.clock() + timedelta(days=2),
    )
    assert uuid.UUID(row.id).version == 7  # time-ordered, as every id of the platform
    await svc.drain()
    assert svc.sent_lines() == []  # not due yet
    svc.clock.advance(days=2)
    await svc.drain()
    [row] = await svc.rows(case)
    assert row.status == "sent" and row.segments == 2 and row.encoding == "UCS-2"
    [line] = svc.sent_lines()
    assert line["message_id"] == row.id and line["to"] == "+84•••••678" and line["sender"] == "TB-HoTro"
    assert line["text"].startswith("Chào chị")
    kinds = [k for k, _ in await svc.events(case)]
    assert kinds == ["scheduled", "sent"]
    sent = (await svc.events(case))[1][1]
    assert (
        sent["segments"] == 2 and sent["encoding"] == "UCS-2" and "phone" not in orjson.dumps(sent).decode()
    )


async def test_referral_accepted_reminds_the_day_before_her_appointment(svc: Service) -> None:
    case = new_case()
    appointment = svc.clock() + timedelta(days=3)
    await svc.apply(opened(case), ReferralAccepted(**referral_kw(case), appointment_at=appointment))
    [row] = await svc.rows(case)
    assert row.template == "appointment_reminder" and row.due_at == appointment - timedelta(days=1)
    svc.clock.advance(days=2)
    await svc.drain()
    [line] = svc.sent_lines()
    assert "10:00 ngày 26/11" in line["text"]


async def test_referral_accepted_without_appointment_and_completed(svc: Service) -> None:
    case = new_case()
    await svc.apply(
        opened(case),
        ReferralAccepted(**referral_kw(case)),
        ReferralCompleted(**referral_kw(case), outcome="service_provided"),
    )
    rows = await svc.rows(case)
    assert [(r.template, r.due_at - svc.clock()) for r in rows] == [
        ("appointment_reminder", timedelta(days=1)),
        ("completion_follow_up", timedelta(days=14)),
    ]
    svc.clock.advance(days=14)
    await svc.drain()
    assert {r.status for r in await svc.rows(case)} == {"sent"}


async def test_no_follow_up_without_sms_consent(svc: Service) -> None:
    case = new_case()
    await svc.apply(opened(case, sms=False), requested(case))
    assert await svc.rows(case) == []


async def test_english_and_unaccented(tmp_path: Path, fake_intake: Intake) -> None:
    svc = await make_service(tmp_path, fake_intake, delay_scale=0, unaccented=True)
    en, vi = new_case(), new_case()
    await svc.apply(opened(en, language="en"), requested(en), opened(vi), requested(vi, "r2"))
    await svc.drain(svc.dispatcher())
    texts = {line["message_id"]: line["text"] for line in svc.sent_lines()}
    [en_row], [vi_row] = await svc.rows(en), await svc.rows(vi)
    assert texts[en_row.id].startswith("Hello")
    assert texts[vi_row.id].startswith("Chao chi, chi co khoe khong?")
    assert (vi_row.encoding, vi_row.segments) == ("GSM-7", 1)
    await svc.dispatchers[0].provider.close()
    await svc.dispatchers[0].contacts.close()
    await svc.rt.engine.dispose()


# -- cancellations ---------------------------------------------------------------------------------------


def closed(case: str) -> Event:
    return CaseStatusChanged(
        case_id=case,
        province="01",
        from_status=CaseStatus.ACTIVE,
        to_status=CaseStatus.CLOSED,
        reason="resolved",
        at=MORNING,
    )


def erased(case: str) -> Event:
    return CaseErased(case_id=case, province="01", at=MORNING)


def withdrawn(case: str) -> Event:
    return ConsentChanged(
        case_id=case,
        province="01",
        purpose=ConsentPurpose.SMS,
        granted=False,
        recorded_by="caseworker",
        at=MORNING,
    )


def do_not_contact(case: str) -> Event:
    return CaseUpdated(
        case_id=case, province="01", contact=ContactPreferences(do_not_contact=True), at=MORNING
    )


def no_sms_channel(case: str) -> Event:
    return CaseUpdated(
        case_id=case, province="01", contact=ContactPreferences(channels=[ContactChannel.ZALO]), at=MORNING
    )


@pytest.mark.parametrize(
    ("stop", "reason"),
    [
        (closed, "case_closed"),
        (erased, "case_erased"),
        (withdrawn, "consent_withdrawn"),
        (do_not_contact, "do_not_contact"),
        (no_sms_channel, "channel_not_allowed"),
    ],
)
async def test_every_pending_message_is_cancelled(svc: Service, stop: Any, reason: str) -> None:
    case, other = new_case(), new_case()
    await svc.apply(
        opened(case),
        opened(other),
        requested(case, "r1"),
        ReferralCompleted(**referral_kw(case, "r2"), outcome="service_provided"),
        requested(other, "r3"),
    )
    assert len(await svc.rows(case)) == 2
    await svc.apply(stop(case))
    rows = await svc.rows(case)
    assert {(r.status, r.reason) for r in rows} == {("cancelled", reason)}
    cancelled = [d for k, d in await svc.events(case) if k == "cancelled"]
    assert sorted(d["message_id"] for d in cancelled) == sorted(r.id for r in rows)
    assert all(d["reason"] == reason for d in cancelled)
    # Nothing is sent to her, and later plans schedule nothing; the other case is untouched.
    await svc.apply(requested(case, "r4"))
    svc.clock.advance(days=30)
    await svc.drain()
    assert [r.status for r in await svc.rows(other)] == ["sent"]
    assert {r.status for r in await svc.rows(case)} == {"cancelled"}
    assert len(svc.sent_lines()) == 1


async def test_erasure_is_final_and_forgets_her_number(svc: Service) -> None:
    case = new_case()
    await svc.apply(opened(case), requested(case))
    svc.clock.advance(days=2)
    await svc.drain()
    assert (await svc.rows(case))[0].phone_hash
    await svc.apply(erased(case), opened(case), requested(case, "r9"))  # a late CaseOpened changes nothing
    rows = await svc.rows(case)
    assert len(rows) == 1 and rows[0].phone_hash is None


async def test_referral_cancelled_cancels_that_referrals_messages_only(svc: Service) -> None:
    case = new_case()
    await svc.apply(opened(case), requested(case, "r1"), requested(case, "r2"))
    await svc.apply(ReferralCancelled(**referral_kw(case, "r1"), reason="duplicate"))
    assert {(r.referral_id, r.status) for r in await svc.rows(case)} == {
        ("r1", "cancelled"),
        ("r2", "scheduled"),
    }


async def test_case_erased_at_intake_is_never_messaged(svc: Service) -> None:
    case = new_case()
    await svc.apply(opened(case), requested(case))
    svc.intake.gone.add(case)  # intake answers 410
    svc.clock.advance(days=2)
    await svc.drain()
    [row] = await svc.rows(case)
    assert (row.status, row.reason) == ("cancelled", "case_erased") and svc.sent_lines() == []


async def test_consent_withdrawn_at_intake_is_respected_at_send_time(svc: Service) -> None:
    case = new_case()
    await svc.apply(opened(case), requested(case))
    svc.intake.no_consent.add(case)
    svc.clock.advance(days=2)
    await svc.drain()
    assert [(r.status, r.reason) for r in await svc.rows(case)] == [("cancelled", "no_consent")]


# -- quiet hours ------------------------------------------------------------------------------------------


async def test_message_due_at_night_waits_for_her_safe_hours(svc: Service) -> None:
    case = new_case()
    svc.clock.at = datetime(2026, 11, 23, 21, 30, tzinfo=HCM).astimezone(UTC)
    await svc.apply(opened(case), requested(case))
    svc.clock.advance(days=2)  # due 21:30 on the 25th: after her 21:00
    await svc.drain()
    [row] = await svc.rows(case)
    assert row.status == "scheduled" and svc.sent_lines() == []
    assert row.due_at == datetime(2026, 11, 26, 7, 0, tzinfo=HCM)  # deferred, not dropped
    svc.clock.at = datetime(2026, 11, 26, 6, 59, tzinfo=HCM).astimezone(UTC)
    await svc.drain()
    assert svc.sent_lines() == []
    svc.clock.at = datetime(2026, 11, 26, 7, 0, tzinfo=HCM).astimezone(UTC)
    await svc.drain()
    assert [r.status for r in await svc.rows(case)] == ["sent"] and len(svc.sent_lines()) == 1


async def test_her_own_safe_hours_from_contact_preferences(svc: Service) -> None:
    case = new_case()
    await svc.apply(opened(case, safe_hours_start="12:00", safe_hours_end="13:30"), requested(case))
    svc.clock.advance(days=2)  # 10:00 local: before her window
    await svc.drain()
    [row] = await svc.rows(case)
    assert row.due_at == datetime(2026, 11, 25, 12, 0, tzinfo=HCM)
    svc.clock.advance(hours=2)
    await svc.drain()
    assert [r.status for r in await svc.rows(case)] == ["sent"]


# -- provider failures through the dispatcher -----------------------------------------------------------


async def test_gateway_down_retries_later_then_sends_once(svc: Service) -> None:
    case = new_case()
    await svc.apply(opened(case), requested(case))
    svc.clock.advance(days=2)
    async with gateway(default="fail") as gw:
        d = svc.dispatcher(HttpProvider(gw.url, API_KEY, timeout=0.5, attempts=2, backoff=0.01))
        await svc.drain(d)
        [row] = await svc.rows(case)
        assert (row.status, row.attempts, row.last_error) == ("scheduled", 1, "http_500")
        assert row.due_at == svc.clock() + timedelta(seconds=5)  # backoff
        gw.default = "ok"
        svc.clock.advance(seconds=5)
        await svc.drain(d)
    [row] = await svc.rows(case)
    assert row.status == "sent" and row.provider_message_id == f"gw-{row.id}"
    assert gw.accepted == Counter({row.id: 1})


async def test_gives_up_after_max_attempts_and_on_rejection(tmp_path: Path, fake_intake: Intake) -> None:
    svc = await make_service(tmp_path, fake_intake, max_attempts=2, delay_scale=0)
    a, b = new_case(), new_case()
    await svc.apply(opened(a), requested(a))
    async with gateway(default="fail") as gw:
        d = svc.dispatcher(HttpProvider(gw.url, API_KEY, timeout=0.5, attempts=1, backoff=0.01))
        await svc.drain(d)
        svc.clock.advance(minutes=1)
        await svc.drain(d)
        gw.default = "reject"
        await svc.apply(opened(b), requested(b, "r2"))
        await svc.drain(d)
    assert [(r.status, r.reason, r.attempts) for r in await svc.rows(a)] == [
        ("failed", "provider_unavailable", 2)
    ]
    assert [(r.status, r.reason) for r in await svc.rows(b)] == [("failed", "provider_rejected")]
    assert [d["reason"] for k, d in await svc.events() if k == "failed"] == [
        "provider_unavailable",
        "provider_rejected",
    ]
    await d.provider.close()
    await d.contacts.close()
    await svc.rt.engine.dispose()


# -- crash between the provider's acceptance and our record: no double send -------------------------------


class Crash(BaseException):
    """The process dies (kill -9) right after the provider accepted the message."""


class CrashAfterSend:
    def __init__(self, inner: SmsProvider) -> None:
        self.inner = inner
        self.name = inner.name

    async def send(self, **kw: str) -> SendResult:
        await self.inner.send(**kw)  # type: ignore[arg-type]
        raise Crash

    async def close(self) -> None:
        await self.inner.close()


@pytest.mark.parametrize("kind", ["file", "http"])
async def test_crash_after_the_provider_accepted_does_not_send_twice(
    tmp_path: Path, fake_intake: Intake, kind: str
) -> None:
    svc = await make_service(tmp_path, fake_intake, delay_scale=0, lease_seconds=30, send_concurrency=1)
    cases = [new_case() for _ in range(3)]
    for i, case in enumerate(cases):
        await svc.apply(opened(case), requested(case, f"r{i}"))
    async with gateway() as gw:

        def provider() -> SmsProvider:
            if kind == "file":
                return FileProvider(svc.outbox_file)
            return HttpProvider(gw.url, API_KEY, timeout=1, attempts=2, backoff=0.01)

        crashing = svc.dispatcher(CrashAfterSend(provider()), worker="dies")
        with pytest.raises(Crash):
            await crashing.dispatch_due()
        rows = [r for c in cases for r in await svc.rows(c)]
        assert sorted(r.status for r in rows) == ["sending"] * 3  # the "sending" state is on record
        # The restarted service (a new process: a fresh provider object) waits for the lease.
        restarted = svc.dispatcher(provider(), worker="restarted")
        assert await restarted.dispatch_due() == 0
        svc.clock.advance(seconds=31)
        await svc.drain(restarted)
        handed_over = (
            Counter(line["message_id"] for line in svc.sent_lines()) if kind == "file" else gw.accepted
        )
    rows = [r for c in cases for r in await svc.rows(c)]
    assert {r.status for r in rows} == {"sent"}
    assert handed_over == Counter({r.id: 1 for r in rows})
    assert Counter(d["message_id"] for k, d in await svc.events() if k == "sent") == Counter(
        {r.id: 1 for r in rows}
    )
    for d in svc.dispatchers:
        await d.provider.close()
        await d.contacts.close()
    await svc.rt.engine.dispose()


# -- two dispatchers on one database ---------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"


async def _reset(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in (FollowUpRow, ContactProfileRow):
            await conn.execute(delete(table))


async def test_two_dispatchers_claim_atomically_and_send_each_message_once(
    tmp_path: Path, fake_intake: Intake, database_url: str
) -> None:
    n = 200
    a = await make_service(tmp_path / "a", fake_intake, url=database_url, delay_scale=0, dispatch_batch=25)
    await _reset(a.rt.engine)
    b = await make_service(tmp_path / "b", fake_intake, url=database_url, delay_scale=0, dispatch_batch=25)
    b.outbox_file = a.outbox_file  # one gateway: the same file
    cases = [new_case() for _ in range(n)]
    await a.apply(*[opened(c) for c in cases])
    await a.apply(*[requested(c, f"r{i}") for i, c in enumerate(cases)])
    da, db = a.dispatcher(worker="a"), b.dispatcher(worker="b")
    claimed: Counter[str] = Counter()

    async def loop(d: Dispatcher) -> None:
        while True:
            got = await d.dispatch_due()
            claimed[d.worker] += got
            if not got:
                return
            await asyncio.sleep(0)

    await asyncio.gather(loop(da), loop(db))
    sent = Counter(line["message_id"] for line in a.sent_lines())
    assert len(sent) == n and max(sent.values()) == 1
    assert claimed["a"] > 0 and claimed["b"] > 0 and claimed["a"] + claimed["b"] == n
    statuses = Counter([r.status for c in cases for r in await a.rows(c)])
    assert statuses == Counter({"sent": n})
    for s in (a, b):
        for d in s.dispatchers:
            await d.provider.close()
            await d.contacts.close()
    await a.rt.engine.dispose()
    await b.rt.engine.dispose()


# -- webhooks --------------------------------------------------------------------------------------------


def webhook_client(svc: Service) -> httpx.AsyncClient:
    app = FastAPI()
    app.state.runtime = svc.rt
    install_problem_handlers(app)
    app.include_router(api.build_router(svc.rt, WebhookAuth(SECRET), BlindIndex(PHONE_KEY), svc.clock))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notification")


async def post(
    client: httpx.AsyncClient, path: str, payload: dict[str, Any], secret: str = SECRET
) -> httpx.Response:
    body = orjson.dumps(payload)
    return await client.post(
        path,
        content=body,
        headers={"content-type": "application/json", "x-osso-signature": sign(secret, body)},
    )


async def sent_message(svc: Service, phone: str = "+84912345678") -> tuple[str, FollowUpRow]:
    case = new_case()
    svc.intake.phones[case] = phone
    await svc.apply(opened(case), requested(case))
    svc.clock.advance(days=2)
    await svc.drain()
    [row] = await svc.rows(case)
    assert row.status == "sent"
    return case, row


async def test_receipts_are_authenticated_idempotent_and_emit_events(svc: Service) -> None:
    case, row = await sent_message(svc)
    async with webhook_client(svc) as client:
        r = await client.post(
            "/v1/receipts", json={"receipt_id": "x", "message_id": row.id, "status": "delivered"}
        )
        assert r.status_code == 401
        r = await post(
            client,
            "/v1/receipts",
            {"receipt_id": "x", "message_id": row.id, "status": "delivered"},
            "wrong-secret-0123456789",
        )
        assert r.status_code == 401
        r = await post(
            client,
            "/v1/receipts",
            {"receipt_id": "rc1", "provider_message_id": row.provider_message_id, "status": "delivered"},
        )
        assert r.json() == {"status": "delivered"}
        r = await post(
            client,
            "/v1/receipts",
            {"receipt_id": "rc1", "provider_message_id": row.provider_message_id, "status": "delivered"},
        )
        assert r.json() == {"status": "duplicate"}
        r = await post(
            client, "/v1/receipts", {"receipt_id": "rc2", "message_id": "nope", "status": "delivered"}
        )
        assert r.json() == {"status": "unknown_message"}
        r = await post(client, "/v1/receipts", {"receipt_id": "rc3", "status": "delivered"})
        assert r.status_code == 422 and "message_id or provider_message_id" in r.json()["detail"]
        _, other = await sent_message(svc)
        r = await post(
            client,
            "/v1/receipts",
            {"receipt_id": "rc4", "message_id": other.id, "status": "failed", "reason": "absent_subscriber"},
        )
        assert r.json() == {"status": "failed"}
    [row] = await svc.rows(case)
    assert row.status == "delivered" and row.delivered_at is not None
    kinds = [(k, d.get("reason")) for k, d in await svc.events() if k in ("delivered", "failed")]
    assert kinds == [("delivered", None), ("failed", "absent_subscriber")]


OPT_OUT_REPLIES = ["HUY", "hủy", "Huỷ.", "TU CHOI", "từ chối", "DUNG", "Dừng", "stop", "STOP please"]


@pytest.mark.parametrize("reply", OPT_OUT_REPLIES)
async def test_opt_out_reply_cancels_her_pending_messages_at_once(svc: Service, reply: str) -> None:
    case, _ = await sent_message(svc, "+84987654321")
    await svc.apply(ReferralCompleted(**referral_kw(case, "r7"), outcome="service_provided"))  # pending, 14 d
    async with webhook_client(svc) as client:
        r = await post(client, "/v1/inbound", {"id": "in-1", "from": "0987 654 321", "text": reply})
        assert r.json() == {"status": "opted_out", "cases": 1}
        r = await post(client, "/v1/inbound", {"id": "in-1", "from": "0987 654 321", "text": reply})
        assert r.json() == {"status": "duplicate"}
    rows = await svc.rows(case)
    assert [(r.status, r.reason) for r in rows] == [("sent", None), ("cancelled", "opted_out")]
    events = await svc.events(case)
    opted = [d for k, d in events if k == "opted_out"]
    assert opted == [{"case_id": case, "province": "01", "channel": "sms", "at": opted[0]["at"]}]
    # Intake records the withdrawal; its ConsentChanged comes back and changes nothing more.
    await svc.apply(
        ConsentChanged(
            case_id=case,
            province="01",
            purpose=ConsentPurpose.SMS,
            granted=False,
            recorded_by="sms_opt_out",
            at=MORNING,
        )
    )
    await svc.apply(requested(case, "r8"))
    assert len(await svc.rows(case)) == 2


async def test_other_replies_and_strangers_change_nothing(svc: Service) -> None:
    case, _ = await sent_message(svc, "+84987654321")
    await svc.apply(ReferralCompleted(**referral_kw(case, "r7"), outcome="service_provided"))
    async with webhook_client(svc) as client:
        r = await post(client, "/v1/inbound", {"id": "in-2", "from": "+84987654321", "text": "Cam on chi"})
        assert r.json() == {"status": "ignored", "cases": 0}
        r = await post(client, "/v1/inbound", {"id": "in-3", "from": "0911111111", "text": "HUY"})
        assert r.json() == {"status": "unknown_sender", "cases": 0}
        r = await post(client, "/v1/inbound", {"id": "in-4", "from": "12ab", "text": "HUY"})
        assert r.status_code == 422 and r.json()["detail"].startswith("from:") and "12ab" not in r.text
    assert [r.status for r in await svc.rows(case)] == ["sent", "scheduled"]


async def test_her_number_is_not_stored_in_clear(svc: Service) -> None:
    await sent_message(svc, "+84987654321")
    await svc.rt.engine.dispose()
    files = Path(svc.settings.platform.data_dir).glob("notification.db*")  # noqa: ASYNC240
    raw = b"".join(p.read_bytes() for p in files)
    raw += svc.outbox_file.read_bytes()
    for form in (b"0987654321", b"987654321", b"84987654321"):
        assert form not in raw
