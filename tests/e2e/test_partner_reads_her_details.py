"""A partner reads her consented details through referral, which asks intake (the owner) with a
service token; intake audits the read. Real processes, real nats-server, SQLite."""

from __future__ import annotations

import httpx
import pytest

from deploy.runner import Platform
from tests.helpers import auth, eventually

pytestmark = pytest.mark.e2e


def test_partner_gets_first_name_and_phone_for_legal_aid_and_the_read_is_audited(platform: Platform) -> None:
    body = {
        "province": "01", "channel": "walk_in", "needs": ["legal"],
        "consent": {"referral": True, "sms": False}, "phone": "0912 000 111",
        "woman": {"full_name": "Trần Thị Mai", "birth_year": 1992},
    }  # fmt: skip
    r = httpx.post(platform.url("intake") + "/v1/cases", json=body, headers=auth(platform))
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]
    partner = auth(platform, "partner", partner_id="hn-legal-aid")
    referrals = platform.url("referral") + "/v1/referrals"
    [ref] = eventually(
        lambda: httpx.get(referrals, headers=partner, params={"case_id": case_id}).json(), timeout=15
    )
    # Not before she is accepted: details are for a partner that took the referral.
    before = httpx.get(f"{referrals}/{ref['id']}/her-details", headers=partner)
    assert before.status_code in (403, 409), before.text
    accepted = httpx.post(f"{referrals}/{ref['id']}/transitions", headers=partner, json={"action": "accept"})
    assert accepted.status_code == 200, accepted.text
    details = httpx.get(f"{referrals}/{ref['id']}/her-details", headers=partner)
    assert details.status_code == 200, details.text
    assert details.json()["fields"] == {"first_name": "Mai", "phone": "+84912000111"}
    # Another partner cannot see the referral at all.
    other = auth(platform, "partner", partner_id="hp-legal-aid")
    assert httpx.get(f"{referrals}/{ref['id']}/her-details", headers=other).status_code == 404
    audit = httpx.get(
        platform.url("intake") + "/v1/audit",
        headers=auth(platform, "supervisor", "01"),
        params={"case_id": case_id},
    ).json()
    rows = audit["items"] if isinstance(audit, dict) else audit
    reads = [a for a in rows if "partner:hn-legal-aid" in a["actor"]]
    assert reads and set(reads[0]["fields"].split(",") if isinstance(reads[0]["fields"], str) else reads[0]["fields"]) == {
        "first_name", "phone",
    }  # fmt: skip
