"""Issue 3: one case flows through all four services over a real nats-server, with no service
calling another on the way (notification reads the phone from intake only at send time)."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import httpx
import pytest

from deploy.runner import Platform
from tests.conftest import make_platform
from tests.helpers import all_stream_messages, auth, eventually, new_case

pytestmark = pytest.mark.e2e


def summary(p: Platform, **params: str) -> dict:
    r = httpx.get(p.url("reporting") + "/v1/reports/summary", headers=auth(p), params=params, timeout=5)
    r.raise_for_status()
    return r.json()


def test_case_with_two_needs_flows_to_referrals_follow_ups_and_summary(platform: Platform) -> None:
    before = summary(platform, province="01")
    r = httpx.post(
        platform.url("intake") + "/v1/cases",
        headers=auth(platform),
        json=new_case("01", ("legal", "psychological"), phone="0987 654 321"),
        timeout=5,
    )
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]

    def referrals() -> list[dict]:
        rows = httpx.get(
            platform.url("referral") + "/v1/referrals", headers=auth(platform), params={"case_id": case_id}
        ).json()
        assert len(rows) == 2
        return rows

    rows = eventually(referrals, timeout=10)
    assert {(x["category"], x["partner_id"]) for x in rows} == {
        ("legal", "hn-legal-aid"),
        ("psychological", "hn-peaceful-house"),
    }

    def sent_messages() -> list[dict]:
        msgs = httpx.get(
            platform.url("notification") + "/v1/messages", headers=auth(platform), params={"case_id": case_id}
        ).json()
        assert msgs and all(m["status"] == "sent" for m in msgs)
        return msgs

    msgs = eventually(sent_messages, timeout=10)
    assert {m["referral_id"] for m in msgs} == {x["id"] for x in rows}
    outbox = (platform.data_dir / "notification" / "sms-outbox.jsonl").read_text()
    assert all(m["id"] in outbox for m in msgs)

    def moved() -> dict:
        s = summary(platform, province="01")
        assert s["cases_opened"] == before["cases_opened"] + 1
        assert s["referrals_requested"] == before["referrals_requested"] + 2
        assert s["messages_sent"] == before["messages_sent"] + 2
        return s

    eventually(moved, timeout=10)
    assert summary(platform, province="92")["cases_opened"] == 0


def test_nothing_identifying_on_any_stream_or_log_line(platform: Platform) -> None:
    phone_forms = ["0987654321", "987654321", "+84987654321", "84987654321", "0987 654 321"]
    r = httpx.post(
        platform.url("intake") + "/v1/cases",
        headers=auth(platform),
        json=new_case("31", ("legal",), phone="0987 654 321"),
    )
    assert r.status_code == 201
    case_id = r.json()["id"]
    eventually(
        lambda: (
            httpx.get(
                platform.url("notification") + "/v1/messages",
                headers=auth(platform),
                params={"case_id": case_id},
            ).json()[0]["status"]
            == "sent"
        ),
        timeout=10,
    )
    assert platform.nats_url
    messages = asyncio.run(all_stream_messages(platform.nats_url))
    assert any(case_id in m[2].decode() for m in messages), "the scan must see this case's events"
    for subject, headers, body in messages:
        blob = subject + repr(headers) + body.decode("utf-8", "replace")
        for form in phone_forms:
            assert form not in blob, f"phone found on {subject}"
    assert platform.log_dir
    logs = [f.read_text() for f in Path(platform.log_dir).glob("*.log")]
    assert logs and any("service_started" in text for text in logs)
    for text in logs:
        for form in phone_forms:
            assert form not in text
    # Her phone is only ciphertext in intake's database.
    raw_db = b"".join(f.read_bytes() for f in platform.data_dir.glob("intake.db*"))
    for form in phone_forms:
        assert form.encode() not in raw_db


def test_consumer_that_was_down_catches_up(tmp_path: Path, nats_server) -> None:
    p = make_platform(tmp_path, nats_server.url)
    p.start()
    try:
        # Let reporting create its durable consumers, then stop it.
        eventually(lambda: summary(p)["cases_opened"] == 0)
        p.stop_service("reporting")
        with httpx.Client(base_url=p.url("intake"), timeout=10, headers=auth(p)) as client:
            for i in range(50):
                r = client.post("/v1/cases", json=new_case(("01", "31", "92")[i % 3], ("legal",)))
                assert r.status_code == 201
        p.start_service("reporting")
        eventually(lambda: summary(p)["cases_opened"] == 50, timeout=20)
        time.sleep(1.0)  # nothing more may arrive: exactly 50, not at least
        s = summary(p)
        assert s["cases_opened"] == 50
        assert s["referrals_requested"] == 50
    finally:
        p.stop()


def test_time_from_post_to_updated_summary(platform: Platform) -> None:
    """Median over 20 cases of POST -> summary shows the case (printed for the closing note)."""
    timings = []
    with httpx.Client(timeout=5, headers=auth(platform)) as client:
        for _ in range(20):
            before = client.get(platform.url("reporting") + "/v1/reports/summary").json()["cases_opened"]
            start = time.perf_counter()
            assert client.post(platform.url("intake") + "/v1/cases", json=new_case()).status_code == 201
            while (
                client.get(platform.url("reporting") + "/v1/reports/summary").json()["cases_opened"] <= before
            ):
                time.sleep(0.002)
            timings.append(time.perf_counter() - start)
    median_ms = statistics.median(timings) * 1000
    print(f"\nPOST -> summary: median {median_ms:.1f} ms, max {max(timings) * 1000:.1f} ms over 20 cases")
    assert len(timings) == 20
