"""Bad input to the skeleton's API: a 422 that names the field, never a 500."""

from __future__ import annotations

import httpx
import pytest

from deploy.runner import Platform
from tests.helpers import auth, new_case

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({**new_case(), "province": "99"}, "province", "post-2025"),
        ({**new_case(), "needs": ["astrology"]}, "needs.0", "legal"),
        ({**new_case(), "needs": []}, "needs", "at least 1"),
        ({**new_case(), "channel": "pigeon"}, "channel", "walk_in"),
        ({**new_case(), "phone": "12345"}, "phone", ""),
        ({k: v for k, v in new_case().items() if k != "consent"}, "consent", "required"),
        ({**new_case(), "name_of_husband": "x"}, "name_of_husband", "not permitted"),
        ({**new_case(phone=None), "consent": {"referral": True, "sms": True}}, "phone", "SMS"),
    ],
)
def test_bad_case_is_rejected_with_the_field_named(
    platform: Platform, body: dict, field: str, words: str
) -> None:
    r = httpx.post(platform.url("intake") + "/v1/cases", headers=auth(platform), json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert field in problem["detail"]
    assert words in problem["detail"]


def test_old_province_name_is_mapped_to_the_new_code(platform: Platform) -> None:
    r = httpx.post(
        platform.url("intake") + "/v1/cases",
        headers=auth(platform),
        json={**new_case(), "province": "Hải Dương"},
    )
    assert r.status_code == 201
    assert r.json()["province"] == "31"
    legacy = httpx.post(
        platform.url("intake") + "/v1/cases",
        headers=auth(platform),
        json={**new_case(), "province": "93", "province_scheme": "vn-legacy"},  # Hậu Giang
    )
    assert legacy.status_code == 201 and legacy.json()["province"] == "92"


def test_unknown_case_is_404_problem(platform: Platform) -> None:
    r = httpx.get(platform.url("intake") + "/v1/cases/does-not-exist", headers=auth(platform))
    assert r.status_code == 404
    assert r.json()["status"] == 404


def test_every_service_has_health_readiness_and_metrics(platform: Platform) -> None:
    for service in ("intake", "referral", "notification", "reporting"):
        base = platform.url(service)
        assert httpx.get(base + "/healthz").json()["status"] == "ok"
        ready = httpx.get(base + "/readyz").json()
        assert ready == {"status": "ready", "database": "ok", "nats": "ok"}
        metrics = httpx.get(base + "/metrics").text
        assert "osso_events_published_total" in metrics or "osso_events_consumed_total" in metrics


def test_tokens_and_province_scope(platform: Platform) -> None:
    cases = platform.url("intake") + "/v1/cases"
    assert httpx.post(cases, json=new_case()).status_code == 401
    assert httpx.post(cases, json=new_case(), headers={"Authorization": "Bearer nonsense"}).status_code == 401
    created = httpx.post(cases, json=new_case("92"), headers=auth(platform, "caseworker", "92"))
    assert created.status_code == 201
    case_id = created.json()["id"]
    hanoi = auth(platform, "caseworker", "01")
    # Another province's case does not exist for her: 404, not 403.
    assert httpx.get(f"{cases}/{case_id}", headers=hanoi).status_code == 404
    assert httpx.get(f"{cases}/{case_id}", headers=auth(platform, "caseworker", "92")).status_code == 200
    assert httpx.post(cases, json=new_case("92"), headers=hanoi).status_code == 403
    assert (
        httpx.get(
            f"{cases}/{case_id}", headers=auth(platform, "partner", partner_id="ct-legal-aid")
        ).status_code
        == 403
    )
    assert httpx.get(f"{cases}/{case_id}", headers=auth(platform, "donor")).status_code == 403
