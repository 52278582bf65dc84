"""Referral end to end with real processes: a case registered at intake reaches its partner, who
works it through the partner API; other partners see nothing of it; the directory is the HSDS demo
of the pilot provinces."""

from __future__ import annotations

import httpx
import pytest

from deploy.runner import Platform
from tests.helpers import auth, eventually, new_case

pytestmark = pytest.mark.e2e


def test_partner_works_its_referral_and_others_see_nothing(platform: Platform) -> None:
    r = httpx.post(
        platform.url("intake") + "/v1/cases",
        headers=auth(platform),
        json=new_case("01", ("legal",)),
        timeout=10,
    )
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]
    referral = platform.url("referral")
    mine, other = (
        auth(platform, "partner", partner_id="hn-legal-aid"),
        auth(platform, "partner", partner_id="hp-legal-aid"),
    )

    def requested() -> dict:
        rows = [
            x
            for x in httpx.get(referral + "/v1/referrals", headers=mine, timeout=5).json()
            if x["case_id"] == case_id
        ]
        assert len(rows) == 1
        return rows[0]

    ref = eventually(requested, timeout=20)
    rid = ref["id"]
    assert (
        ref["status"] == "requested"
        and ref["accept_by"]
        and ref["allowed_actions"] == ["accept", "reject", "hold"]
    )
    assert httpx.get(f"{referral}/v1/referrals/{rid}", headers=other, timeout=5).status_code == 404
    assert case_id not in httpx.get(referral + "/v1/referrals", headers=other, timeout=5).text

    def step(body: dict, who: dict = mine) -> httpx.Response:
        return httpx.post(f"{referral}/v1/referrals/{rid}/transitions", json=body, headers=who, timeout=5)

    assert step({"action": "accept"}, other).status_code == 404
    bad = step({"action": "complete", "outcome": "done"})
    assert bad.status_code == 409 and bad.json()["allowed"] == ["accept", "reject", "hold", "cancel"]
    assert step({"action": "accept"}).json()["status"] == "accepted"
    details = httpx.get(f"{referral}/v1/referrals/{rid}/her-details", headers=mine, timeout=10)
    # Intake's shared-details endpoint answers, or the partner gets a clear problem: never a 500.
    assert details.status_code in (200, 403, 404, 502, 503), details.text
    if details.status_code != 200:
        assert details.headers["content-type"].startswith("application/problem+json")
    assert step({"action": "start"}).json()["status"] == "in_progress"
    assert (
        httpx.post(
            f"{referral}/v1/referrals/{rid}/notes", json={"text": "Đã gọi"}, headers=mine, timeout=5
        ).status_code
        == 201
    )
    done = step({"action": "complete", "outcome": "legal_aid_given"}).json()
    assert done["status"] == "completed" and done["outcome"] == "legal_aid_given"


def test_directory_is_the_hsds_demo_of_the_pilot_provinces(platform: Platform) -> None:
    partners = httpx.get(platform.url("referral") + "/v1/partners", timeout=5).json()
    assert {p for x in partners for p in x["provinces"]} == {"01", "31", "92", "40", "42", "44"}
    assert {x["id"] for x in partners if not x["active"]} == {"qb-health"}
    exported = httpx.get(
        platform.url("referral") + "/v1/admin/directory/export", headers=auth(platform), timeout=5
    ).json()
    assert len(exported["organization"]) == len(partners) and exported["hsds_version"] == "3.0"
