"""Issue 6 with real processes: two notification replicas against one real nats-server and one
database (SQLite file, and PostgreSQL for the ``postgres`` run), one of them killed with -9 and
restarted mid-stream: every message is sent exactly once, every event published once, and an
opt-out reply to either replica cancels her pending messages and tells intake."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from deploy.runner import Platform, wait_ready
from services.notification.webhooks import sign
from shared.envelope import encode
from shared.events import CaseOpened, ConsentSnapshot, Event, ReferralCompleted, ReferralRequested
from shared.natsserver import NatsServer, free_port
from shared.vocab import Channel, ServiceCategory
from tests.conftest import TEST_ENV
from tests.helpers import all_stream_messages, auth, eventually

pytestmark = pytest.mark.e2e

N = 100
BATCH = 10  # messages a replica claims at a time


def phone_of(i: int) -> str:
    return f"+8491{i:07d}"


class FakeIntake:
    """Intake's contact endpoint, in a thread of its own (the test thread blocks on processes)."""

    def __init__(self, phones: dict[str, str]) -> None:
        self.phones = phones
        self.port = free_port()
        app = Starlette(routes=[Route("/internal/v1/cases/{case_id}/contact", self.contact)])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def contact(self, request: Request) -> JSONResponse:
        case_id = request.path_params["case_id"]
        if case_id not in self.phones:
            return JSONResponse({"title": "Not found"}, 404)
        return JSONResponse(
            {"case_id": case_id, "phone": self.phones[case_id], "sms_consent": True, "status": "open"}
        )

    def __enter__(self) -> FakeIntake:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)


async def publish(url: str, events: list[Event]) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        for event in events:
            m = encode(event)
            await js.publish(m.subject, m.body, headers=m.headers)
    finally:
        await nc.close()


def case_events(i: int, case_id: str) -> list[Event]:
    now = datetime.now(UTC)
    return [
        CaseOpened(
            case_id=case_id,
            province="01",
            channel=Channel.HOTLINE,
            needs=[ServiceCategory.LEGAL],
            consent=ConsentSnapshot(referral=True, sms=True),
            opened_at=now,
        ),
        ReferralRequested(
            referral_id=f"r-{case_id}",
            case_id=case_id,
            partner_id="hn-legal-aid",
            province="01",
            category=ServiceCategory.LEGAL,
            requested_at=now,
        ),
    ]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "postgres":
        return {"OSSO_NOTIFICATION_DATABASE_URL": str(request.getfixturevalue("pg_url"))}
    return {}


@contextlib.contextmanager
def replicas(tmp: Path, nats_url: str, intake_port: int, env: dict[str, str]) -> Iterator[Platform]:
    p = Platform(
        data_dir=tmp / "platform",
        nats_url=nats_url,
        ports={"intake": intake_port, "notification": free_port()},
        seed_demo=False,
        extra_env={
            **TEST_ENV,
            # Small batches so both replicas take part; a short lease so a killed one's claims return soon.
            "OSSO_NOTIFICATION_DISPATCH_BATCH": str(BATCH),
            "OSSO_NOTIFICATION_LEASE_SECONDS": "3",
            # A killed replica's unacked CaseOpened comes back after ack_wait; until then the
            # referral events of those cases are retried (they wait for their case), so the retry
            # horizon (max_deliver x growing nak delay) must outlast ack_wait or they dead-letter.
            "OSSO_ACK_WAIT": "5",
            "OSSO_MAX_DELIVER": "20",
            **env,
        },
        log_dir=tmp / "logs",
    )
    p.data_dir.mkdir(parents=True, exist_ok=True)
    _ = p.jwt_secret
    try:
        start(p)  # the first one creates the schema
        start(p, replica=2)
        yield p
    finally:
        p.stop()


def start(p: Platform, replica: int = 1) -> None:
    """Start a notification process; generous readiness timeout for a loaded CI machine."""
    proc = p.start_service("notification", wait=False, replica=replica)
    name = "notification" if replica == 1 else f"notification-{replica}"
    wait_ready(p.url(name), timeout=90, process=proc)


def outbox_counts(p: Platform) -> Counter[str]:
    path = p.data_dir / "notification" / "sms-outbox.jsonl"
    if not path.exists():
        return Counter()
    return Counter(orjson.loads(line)["message_id"] for line in path.read_bytes().splitlines() if line)


def stream_events(url: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for subject, _headers, body in asyncio.run(all_stream_messages(url)):
        if subject.startswith("osso.notification."):
            out.append((subject.rsplit(".", 1)[1], orjson.loads(body)))
    return out


def test_two_replicas_one_killed_and_restarted_send_every_message_exactly_once(
    tmp_path: Path, nats_server: NatsServer, database_env: dict[str, str]
) -> None:
    cases = [f"case-{i:04d}" for i in range(N)]
    phones = {c: phone_of(i) for i, c in enumerate(cases)}
    with FakeIntake(phones) as intake, replicas(tmp_path, nats_server.url, intake.port, database_env) as p:
        events = [e for i, c in enumerate(cases) for e in case_events(i, c)]
        asyncio.run(publish(nats_server.url, events[:N]))  # the first half of the cases
        eventually(lambda: len(outbox_counts(p)) >= N // 4, timeout=60, interval=0.01)
        p.stop_service("notification-2", kill=True)  # kill -9 in the middle of sending
        asyncio.run(publish(nats_server.url, events[N:]))
        start(p, replica=2)

        def all_sent() -> Counter[str]:
            counts = outbox_counts(p)
            assert len(counts) == N, f"{len(counts)} of {N} sent"
            return counts

        counts = eventually(all_sent, timeout=90, interval=0.2)
        time.sleep(4)  # longer than a lease: nothing more may be sent
        counts = outbox_counts(p)
        assert len(counts) == N and max(counts.values()) == 1, "an SMS sent twice"

        def events_settled() -> list[tuple[str, dict[str, Any]]]:
            found = stream_events(nats_server.url)
            assert sum(1 for k, _ in found if k == "sent") >= N
            return found

        found = eventually(events_settled, timeout=30, interval=0.5)
        sent = Counter(d["message_id"] for k, d in found if k == "sent")
        scheduled = Counter(d["message_id"] for k, d in found if k == "scheduled")
        assert sent == Counter(dict.fromkeys(counts, 1)) and scheduled == sent

        # Every message was claimed at least once, by one replica or the other (the killed one's
        # claims ran out and were taken over), as their "batch_dispatched" lines tell: all but at
        # most the killed replica's last batch, whose outcomes it may have committed (sent once, as
        # checked above) and been killed before it wrote that line.
        claimed = 0
        for name in ("notification", "notification-2"):
            for line in (tmp_path / "logs" / f"{name}.log").read_text().splitlines():
                if '"batch_dispatched"' in line:
                    claimed += orjson.loads(line)["claimed"]
        assert claimed >= N - BATCH

        # Her opt-out reply, to either replica, cancels what is still pending for her and tells intake.
        her = cases[7]
        asyncio.run(
            publish(
                nats_server.url,
                [
                    ReferralCompleted(
                        referral_id=f"r-{her}",
                        case_id=her,
                        partner_id="hn-legal-aid",
                        province="01",
                        category=ServiceCategory.LEGAL,
                        at=datetime.now(UTC),
                        outcome="service_provided",
                    )
                ],
            )
        )
        with httpx.Client(base_url=p.url("notification-2"), timeout=10) as client:

            def both() -> list[dict[str, Any]]:
                msgs = client.get("/v1/messages", params={"case_id": her}, headers=auth(p)).json()
                assert [m["status"] for m in msgs] == ["sent", "sent"]
                return msgs

            eventually(both, timeout=20)
        secret = (p.data_dir / "keys" / "notification-webhook-secret").read_text().strip()
        body = orjson.dumps({"id": "gw-in-1", "from": phones[her].replace("+84", "0"), "text": "Hủy"})
        r = httpx.post(
            p.url("notification") + "/v1/inbound",
            content=body,
            headers={"content-type": "application/json", "x-osso-signature": sign(secret, body)},
            timeout=10,
        )
        assert r.status_code == 200 and r.json() == {"status": "opted_out", "cases": 1}, r.text
        opted = eventually(
            lambda: [d for k, d in stream_events(nats_server.url) if k == "opted_out"],
            timeout=20,
            interval=0.3,
        )
        assert [(d["case_id"], d["channel"]) for d in opted] == [(her, "sms")]

        # Her number never reached the bus or the logs; the outbox file has it masked.
        blob = repr(asyncio.run(all_stream_messages(nats_server.url)))
        blob += "".join(f.read_text() for f in (tmp_path / "logs").glob("notification*.log"))
        for i in (0, 7, N - 1):
            for form in (phone_of(i), phone_of(i)[1:], phone_of(i).replace("+84", "0")):
                assert form not in blob
        wait_ready(p.url("notification"))


def test_quiet_hours_defer_a_real_process_with_a_controlled_clock(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """The process's clock is shifted to 23:00 in Vietnam: the check-in waits until 07:00."""
    hcm = ZoneInfo("Asia/Ho_Chi_Minh")
    now = datetime.now(UTC)
    local = now.astimezone(hcm)
    target = local.replace(hour=23, minute=0, second=0, microsecond=0)
    offset = (target - local).total_seconds()
    case = "case-night"
    env = {"OSSO_NOTIFICATION_QUIET_HOURS_ENABLED": "true", "OSSO_NOTIFICATION_CLOCK_OFFSET": str(offset)}
    with FakeIntake({case: phone_of(1)}) as intake:
        p = Platform(
            data_dir=tmp_path / "platform",
            nats_url=nats_server.url,
            ports={"intake": intake.port, "notification": free_port()},
            seed_demo=False,
            extra_env={**TEST_ENV, **env},
            log_dir=tmp_path / "logs",
        )
        p.data_dir.mkdir(parents=True)
        try:
            start(p)
            asyncio.run(publish(nats_server.url, case_events(1, case)))

            def deferred() -> dict[str, Any]:
                msgs = httpx.get(
                    p.url("notification") + "/v1/messages", params={"case_id": case}, headers=auth(p)
                ).json()
                assert msgs
                due = datetime.fromisoformat(msgs[0]["due_at"]).astimezone(hcm)
                assert (due.hour, due.minute) == (7, 0), due
                return msgs[0]

            msg = eventually(deferred, timeout=20, interval=0.2)
            assert msg["status"] == "scheduled" and msg["sent_at"] is None
            assert outbox_counts(p) == Counter()
        finally:
            p.stop()
