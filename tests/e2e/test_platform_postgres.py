"""The walking-skeleton path with every service on PostgreSQL (production's database), against a
real nats-server: the same plumbing (outbox, inbox, upserts, leases) works on both databases."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from deploy.runner import SERVICES, Platform
from shared.natsserver import NatsServer
from tests.conftest import make_platform
from tests.helpers import auth, eventually, new_case

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

PG = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def pg_platform(tmp_path: Path, nats_server: NatsServer) -> Iterator[Platform]:
    try:
        asyncio.run(_admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError) as exc:  # pragma: no cover - depends on the machine
        pytest.fail(f"PostgreSQL is not reachable on 127.0.0.1:5432: {exc}")
    prefix = f"osso_e2e_{secrets.token_hex(4)}"
    for service in SERVICES:
        asyncio.run(_admin(f"CREATE DATABASE {prefix}_{service}"))
    env = {
        f"OSSO_{s.upper()}_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{prefix}_{s}"
        for s in SERVICES
    }
    p = make_platform(tmp_path, nats_server.url, **env)
    p.start()
    try:
        yield p
    finally:
        p.stop()
        for service in SERVICES:
            asyncio.run(_admin(f"DROP DATABASE IF EXISTS {prefix}_{service} WITH (FORCE)"))


def test_case_flows_through_all_services_on_postgres(pg_platform: Platform) -> None:
    p = pg_platform
    for _ in range(3):
        r = httpx.post(
            p.url("intake") + "/v1/cases", headers=auth(p), json=new_case("92", ("legal", "livelihood"))
        )
        assert r.status_code == 201, r.text
    case_id = r.json()["id"]

    def done() -> bool:
        s = httpx.get(p.url("reporting") + "/v1/reports/summary", headers=auth(p)).json()
        assert (s["cases_opened"], s["referrals_requested"]) == (3, 6), s
        return True

    eventually(done, timeout=20)
    rows = httpx.get(p.url("referral") + "/v1/referrals", headers=auth(p), params={"case_id": case_id}).json()
    assert {x["category"] for x in rows} == {"legal", "livelihood"}
    msgs = eventually(
        lambda: httpx.get(
            p.url("notification") + "/v1/messages", headers=auth(p), params={"case_id": case_id}
        ).json(),
        timeout=20,
    )
    assert {m["referral_id"] for m in msgs} >= {x["id"] for x in rows}
    got = httpx.get(p.url("intake") + f"/v1/cases/{case_id}", headers=auth(p))
    assert got.status_code == 200 and got.json()["province"] == "92"
