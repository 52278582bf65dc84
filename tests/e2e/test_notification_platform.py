"""Issue 6 across the real platform (four processes, one nats-server): her language chooses the
template, the SMS file shows only a masked number, and her "HỦY" reply to the webhook makes intake
withdraw her SMS consent, with nothing identifying on the bus."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import orjson
import pytest

from deploy.runner import SERVICES, Platform, wait_ready
from services.notification.webhooks import sign
from shared.natsserver import NatsServer
from tests.conftest import make_platform
from tests.helpers import all_stream_messages, auth, eventually, new_case

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def platform(module_nats: NatsServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The four services, with a readiness timeout generous enough for a loaded CI machine."""
    p = make_platform(tmp_path_factory.mktemp("platform"), module_nats.url)
    p.data_dir.mkdir(parents=True, exist_ok=True)
    _ = p.jwt_secret  # before any service starts, so all read the same key
    try:
        for service in SERVICES:
            p.start_service(service, wait=False)
        for service in SERVICES:
            wait_ready(p.url(service), timeout=120, process=p.processes[service])
        yield p
    finally:
        p.stop()


def sms_lines(p: Platform) -> dict[str, dict]:
    path = p.data_dir / "notification" / "sms-outbox.jsonl"
    return {d["message_id"]: d for d in map(orjson.loads, path.read_bytes().splitlines())}


def signed_post(p: Platform, path: str, payload: dict, secret: str | None = None) -> httpx.Response:
    secret = secret or (p.data_dir / "keys" / "notification-webhook-secret").read_text().strip()
    body = orjson.dumps(payload)
    return httpx.post(
        p.url("notification") + path,
        content=body,
        headers={"content-type": "application/json", "x-osso-signature": sign(secret, body)},
        timeout=10,
    )


def test_english_follow_up_then_opt_out_reply_withdraws_consent_at_intake(platform: Platform) -> None:
    body = {**new_case("01", ("legal",), phone="0976 543 210"), "contact": {"language": "en"}}
    r = httpx.post(platform.url("intake") + "/v1/cases", headers=auth(platform), json=body, timeout=10)
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]

    def sent() -> list[dict]:
        msgs = httpx.get(
            platform.url("notification") + "/v1/messages", headers=auth(platform), params={"case_id": case_id}
        ).json()
        assert msgs and all(m["status"] == "sent" for m in msgs)
        return msgs

    [msg] = eventually(sent, timeout=20)
    assert msg["segments"] == 1 and msg["encoding"] == "GSM-7" and msg["plan"] == "referral_checkin"
    line = sms_lines(platform)[msg["id"]]
    assert line["text"].startswith("Hello") and line["to"] == "+84•••••210" and line["sender"] == "TB-HoTro"

    # A forged webhook is refused.
    forged = signed_post(
        platform, "/v1/inbound", {"id": "x", "from": "0976543210", "text": "HUY"}, "not-the-secret"
    )
    assert forged.status_code == 401 and forged.headers["content-type"].startswith("application/problem+json")

    r = signed_post(
        platform, "/v1/inbound", {"id": f"in-{case_id}", "from": "+84 976 543 210", "text": "HỦY"}
    )
    assert r.status_code == 200 and r.json() == {"status": "opted_out", "cases": 1}, r.text
    assert platform.nats_url

    def withdrawn() -> dict:
        found = [
            orjson.loads(b)
            for s, h, b in asyncio.run(all_stream_messages(platform.nats_url))
            if h.get("ce-type") == "vn.osso.case.consent_changed.v1" and h.get("ce-subject") == case_id
        ]
        assert found
        return found[0]

    change = eventually(withdrawn, timeout=20, interval=0.3)
    assert (change["purpose"], change["granted"], change["recorded_by"]) == ("sms", False, "sms_opt_out")
    # Receipts for the message are accepted once.
    receipt = {"receipt_id": f"rc-{msg['id']}", "message_id": msg["id"], "status": "delivered"}
    assert signed_post(platform, "/v1/receipts", receipt).json() == {"status": "delivered"}
    assert signed_post(platform, "/v1/receipts", receipt).json() == {"status": "duplicate"}

    blob = repr(asyncio.run(all_stream_messages(platform.nats_url)))
    for form in ("0976543210", "976543210", "+84976543210"):
        assert form not in blob
