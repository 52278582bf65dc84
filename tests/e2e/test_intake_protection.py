"""Issue 4 acceptance against real processes: nothing identifying leaks to the database files, the
streams or the logs, in any normalisation; and the OpenAPI contract is fuzzed without a 500."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from deploy.runner import Platform
from shared.vntext import fold, unaccent
from tests.conftest import make_platform
from tests.helpers import all_stream_messages, auth, eventually

pytestmark = pytest.mark.e2e

NAME = "Đặng Thị Huyền Trang"
PHONE = "0987 612 345"
CCCD = "001191023456"
CHILD = "Lưu Minh Khuê"


def forms(value: str) -> set[str]:
    """The value in every normalisation a leak could take."""
    out = {value, value.lower(), value.upper(), unaccent(value), fold(value), fold(value).replace(" ", "")}
    out |= {unicodedata.normalize(f, v) for v in list(out) for f in ("NFC", "NFD", "NFKC", "NFKD")}
    digits = re.sub(r"\D", "", value)
    if digits:
        out |= {digits, value.replace(" ", "")}
        if digits.startswith("0") and len(digits) == 10:
            out |= {
                "+84" + digits[1:],
                "84" + digits[1:],
                digits[1:],
                "+84 " + digits[1:4] + " " + digits[4:],
            }
    return {f for f in out if len(f) >= 6}


@pytest.fixture(scope="module")
def intake_only(module_nats: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    p = make_platform(tmp_path_factory.mktemp("intake-e2e"), module_nats.url)
    p.start(services=("intake",))
    yield p
    p.stop()


def test_her_name_phone_and_cccd_never_leave_in_clear(intake_only: Platform) -> None:
    p = intake_only
    url = p.url("intake")
    body = {
        "province": "01",
        "channel": "handover",
        "needs": ["legal", "children"],
        "consent": {"referral": True, "sms": True},
        "phone": PHONE,
        "woman": {
            "full_name": NAME,
            "birth_year": 1991,
            "cccd": CCCD,
            "address": {"province": "01", "line": "ngõ Huyền Trang 12"},
        },
        "story": {"trafficking_status": "identified", "notes": f"{NAME} gọi từ {PHONE}"},
        "children": [{"name": CHILD, "age": 3}],
    }
    with httpx.Client(base_url=url, headers=auth(p), timeout=10) as c:
        r = c.post("/v1/cases", json=body)
        assert r.status_code == 201, r.text
        case_id = r.json()["id"]
        # Reads, searches, updates, sessions and a 409 duplicate all pass through the logs too.
        assert c.get(f"/v1/cases/{case_id}").json()["woman"]["full_name"] == NAME
        assert c.get("/v1/cases", params={"q": fold(NAME)}).json()["total"] == 1
        assert c.get("/v1/cases", params={"q": PHONE}).json()["total"] == 1
        assert c.get("/v1/cases", params={"q": CCCD}).json()["total"] == 1
        assert c.post("/v1/cases", json=body).status_code == 409
        bad = c.post("/v1/cases", json={**body, "woman": {**body["woman"], "cccd": CCCD[:-1]}})
        assert bad.status_code == 422 and CCCD[:-1] not in bad.text
        c.post(
            f"/v1/cases/{case_id}/sessions",
            json={
                "held_on": "2026-01-02",
                "channel": "handover",
                "topics": ["legal"],
                "duration_minutes": 30,
                "counsellor": "cw-1",
                "notes": NAME,
            },
        )
        c.patch(f"/v1/cases/{case_id}", json={"story": {"notes": CCCD}})
    assert p.nats_url

    def published() -> list[tuple[str, dict[str, str], bytes]]:
        msgs = asyncio.run(all_stream_messages(p.nats_url or ""))
        assert sum(case_id in m[2].decode() for m in msgs) >= 3
        return msgs

    messages = eventually(published, timeout=15)
    p.stop_service("intake")  # flush and close the database and the logs
    try:
        secrets = forms(NAME) | forms(PHONE) | forms(CCCD) | forms(CHILD)
        blobs: dict[str, bytes] = {}
        for subject, headers, data in messages:
            blobs[f"stream {subject}"] = (subject + repr(headers)).encode() + data
        for f in p.data_dir.glob("intake.db*"):
            blobs[f.name] = f.read_bytes()
        assert p.log_dir
        for f in Path(p.log_dir).glob("*.log"):
            blobs[f.name] = f.read_bytes()
        assert any(name.startswith("intake.db") for name in blobs) and "intake.log" in blobs
        for where, blob in blobs.items():
            for secret in secrets:
                for encoded in {secret.encode(), secret.encode("utf-16-le")}:
                    assert encoded not in blob, f"{secret!r} found in {where}"
    finally:
        p.start_service("intake")


def test_no_input_makes_intake_fail(intake_only: Platform) -> None:
    """Every operation of the OpenAPI spec, with valid and invalid inputs, answers without a 500
    (bounded: 25 examples an operation, a few hundred requests in all)."""
    base = intake_only.url("intake")
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    tried = 0
    calls: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        role = "service" if operation.path.startswith("/internal") else "central_admin"
        headers = auth(intake_only, role)

        def make_call(headers: dict[str, str], strategy: Any) -> Any:
            # A closure, not a default argument: hypothesis refuses @given on functions with defaults.
            @given(case=strategy)
            @settings(
                max_examples=25,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
            )
            def run(case: Any) -> None:
                case.call_and_validate(base_url=base, headers=headers, checks=[not_a_server_error])
                calls.append(case.path)

            return run

        call = make_call(headers, operation.as_strategy())
        call()
        tried += 1
    assert tried >= 15
    print(f"\nschemathesis: {len(calls)} requests over {tried} operations")
    assert len(calls) >= 200
