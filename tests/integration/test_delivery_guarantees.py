"""Issue 3, tests 3 and 4: duplicates count once; poison messages are dead-lettered with their
reason, the consumer keeps going, and ``osso dlq replay`` re-publishes them. Real nats-server,
real SQLite, real service processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import httpx
import nats
import pytest

from deploy.runner import Platform
from shared.envelope import encode
from shared.events import CaseOpened, ConsentSnapshot, Event, ReferralRequested
from shared.vocab import Channel, ServiceCategory
from tests.helpers import auth, eventually

pytestmark = pytest.mark.e2e


def opened(province: str = "01", case_id: str | None = None, sms: bool = False) -> CaseOpened:
    return CaseOpened(
        case_id=case_id or str(uuid.uuid4()),
        province=province,
        channel=Channel.HOTLINE,
        needs=[ServiceCategory.LEGAL],
        consent=ConsentSnapshot(referral=False, sms=sms),
        opened_at=datetime.now(UTC),
    )


async def publish(url: str, event: Event, event_id: str | None = None, msg_id: str | None = None) -> bool:
    """Publish as a service would; returns whether the server reported a duplicate."""
    message = encode(event, event_id=event_id)
    headers = dict(message.headers)
    if msg_id:
        headers["Nats-Msg-Id"] = msg_id
    nc = await nats.connect(url)
    try:
        ack = await nc.jetstream().publish(message.subject, message.body, headers=headers)
        return bool(ack.duplicate)
    finally:
        await nc.close()


def summary(p: Platform) -> dict:
    return httpx.get(p.url("reporting") + "/v1/reports/summary", headers=auth(p)).json()


def osso(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy", *args, "--nats-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def dead_letters(url: str) -> list[dict]:
    out = osso("dlq", "list", "--json", url=url)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_same_event_twice_is_counted_once(platform: Platform) -> None:
    assert platform.nats_url
    before = summary(platform)["cases_opened"]
    event, event_id = opened(), str(uuid.uuid4())
    assert asyncio.run(publish(platform.nats_url, event, event_id)) is False
    # Same id again: the server's duplicate window drops it.
    assert asyncio.run(publish(platform.nats_url, event, event_id)) is True
    # Same event id under another message id (as a replay would): the consumer's inbox drops it.
    assert asyncio.run(publish(platform.nats_url, event, event_id, msg_id=f"{event_id}:again")) is False
    eventually(lambda: summary(platform)["cases_opened"] == before + 1)
    # A later event proves the consumer went past the duplicates, which still count once.
    asyncio.run(publish(platform.nats_url, opened()))
    eventually(lambda: summary(platform)["cases_opened"] == before + 2)


def test_poison_event_is_dead_lettered_and_the_consumer_keeps_going(platform: Platform) -> None:
    assert platform.nats_url
    before = summary(platform)["cases_opened"]
    poison = opened(province="99")  # a well-formed event whose province reporting cannot place
    asyncio.run(publish(platform.nats_url, poison))
    good = opened()
    asyncio.run(publish(platform.nats_url, good))
    eventually(lambda: summary(platform)["cases_opened"] == before + 1)

    def letter() -> dict:
        found = [d for d in dead_letters(platform.nats_url) if d["consumer"] == "reporting-case-events"]
        assert found
        return found[-1]

    d = eventually(letter, timeout=20)
    assert d["subject"] == "osso.case.99.opened"
    assert d["deliveries"] == 3  # OSSO_MAX_DELIVER in the tests
    assert "unknown province '99'" in d["reason"]
    shown = osso("dlq", "show", str(d["seq"]), url=platform.nats_url)
    assert shown.returncode == 0 and poison.case_id in shown.stdout
    # Still counted once, and only the good one.
    assert summary(platform)["cases_opened"] == before + 1


def test_malformed_event_is_dead_lettered_at_once(platform: Platform) -> None:
    assert platform.nats_url

    async def send_garbage() -> None:
        nc = await nats.connect(platform.nats_url)
        headers = {
            "ce-specversion": "1.0",
            "ce-id": str(uuid.uuid4()),
            "ce-source": "/test",
            "ce-type": "vn.osso.case.opened.v1",
            "Nats-Msg-Id": str(uuid.uuid4()),
        }
        await nc.jetstream().publish("osso.case.01.opened", b'{"case_id": "x"}', headers=headers)
        await nc.close()

    before = summary(platform)["cases_opened"]
    asyncio.run(send_garbage())
    asyncio.run(publish(platform.nats_url, opened()))
    eventually(lambda: summary(platform)["cases_opened"] == before + 1)

    def letters() -> list[dict]:
        found = [d for d in dead_letters(platform.nats_url) if "failed validation" in d["reason"]]
        # Every service consuming case.opened dead-letters it once, after one delivery.
        assert {d["consumer"] for d in found} >= {"reporting-case-events", "referral-case-opened"}
        return found

    found = eventually(letters, timeout=20)
    assert all(d["deliveries"] == 1 for d in found)
    assert any("province: Field required" in d["reason"] for d in found)


def test_replay_re_publishes_a_dead_letter_once_its_cause_is_fixed(platform: Platform) -> None:
    """A referral for a case notification has never heard of fails until the case arrives;
    once it has, replaying the dead letter schedules the follow-up."""
    assert platform.nats_url
    case_id = str(uuid.uuid4())
    orphan = ReferralRequested(
        referral_id=str(uuid.uuid4()),
        case_id=case_id,
        partner_id="hn-legal-aid",
        province="01",
        category=ServiceCategory.LEGAL,
        requested_at=datetime.now(UTC),
    )
    asyncio.run(publish(platform.nats_url, orphan))

    def letter() -> dict:
        found = [
            d
            for d in dead_letters(platform.nats_url)
            if d["consumer"] == "notification-referral-requested" and case_id in d["reason"]
        ]
        assert found
        return found[0]

    d = eventually(letter, timeout=20)
    assert "not yet known" in d["reason"]
    messages = platform.url("notification") + "/v1/messages"
    assert httpx.get(messages, headers=auth(platform), params={"case_id": case_id}).json() == []

    asyncio.run(publish(platform.nats_url, opened(case_id=case_id, sms=True)))
    out = osso("dlq", "replay", str(d["seq"]), url=platform.nats_url)
    assert out.returncode == 0, out.stderr
    assert "osso.referral.hn-legal-aid.requested" in out.stdout
    scheduled = eventually(
        lambda: httpx.get(messages, headers=auth(platform), params={"case_id": case_id}).json(), timeout=10
    )
    assert [m["referral_id"] for m in scheduled] == [orphan.referral_id]
    # Reporting had counted the referral on first delivery; the replay does not count it again.
    assert osso("dlq", "replay", "999999", url=platform.nats_url).returncode == 1
