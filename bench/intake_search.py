"""Name-search latency over 100,000 cases through intake's HTTP API (a real intake process).

The cases are sealed and indexed with intake's own code (per-case keys, blind indexes) and
bulk-inserted into a fresh SQLite database, then intake starts on it and a client searches.

    .venv/bin/python bench/intake_search.py [--cases 100000] [--queries 400]

Prints p50 and p95 in ms for full-name searches (folded, no diacritics) and for single-word
searches (target: name search <= 50 ms at p95).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.runner import Platform, provision_streams
from services.intake.app import MIGRATIONS
from services.intake.domain import Identity, search_keys
from services.intake.protect import Protector
from services.intake.settings import IntakeSettings
from services.intake.store import CaseKeyRow, cases, lookups, table
from shared.auth import Role
from shared.db import make_engine
from shared.migrations import upgrade
from shared.natsserver import NatsServer, free_port
from shared.settings import PlatformSettings
from shared.vntext import fold

SURNAMES = [
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
]
MIDDLE = ["Thị", "Ngọc", "Thu", "Thanh", "Minh", "Kim", "Thị Kim", "Thị Thu"]
GIVEN = ["Hoà", "Lan", "Mai", "Hương", "Trang", "Linh", "Hạnh", "Yến", "Thảo", "Nhung", "Vân", "Quế", "Huyền",
         "Loan", "Dung", "Phượng", "Nga", "Hằng", "Tuyết", "Xuân", "Oanh", "Thuý", "Diệp", "Bích"]  # fmt: skip
PROVINCES = ["01", "31", "92", "40", "42", "44", "46", "48"]


async def seed(data_dir: Path, n: int) -> list[str]:
    settings = IntakeSettings(platform=PlatformSettings(data_dir=data_dir))
    protector = Protector(settings)
    engine = make_engine(settings.resolved_database_url("intake"))
    await upgrade(engine, MIGRATIONS)
    rnd = random.Random(7)
    now = datetime.now(UTC)
    names = []
    keys_t = table(CaseKeyRow)
    batch = 5000
    for start in range(0, n, batch):
        case_rows, key_rows, lookup_rows = [], [], []
        for i in range(start, min(n, start + batch)):
            case_id = str(uuid.uuid4())
            province = rnd.choice(PROVINCES)
            name = f"{rnd.choice(SURNAMES)} {rnd.choice(MIDDLE)} {rnd.choice(GIVEN)}"
            names.append(name)
            identity = Identity(full_name=name, birth_year=rnd.randint(1965, 2005), phones=[f"+849{i:08d}"])
            key, wrapped = protector.new_case_key(case_id)
            key_rows.append({"case_id": case_id, "wrapped_key": wrapped, "created_at": now})
            case_rows.append(
                {"id": case_id, "province": province, "province_scheme": "vn-2025", "channel": "hotline",
                 "needs": "legal", "priorities": {}, "consent_referral": True, "consent_sms": True,
                 "consent_zalo": False, "consent_statistics": True, "profile": {}, "story": {}, "children": [],
                 "contact": {}, "identity_enc": protector.seal_identity(key, identity), "has_phone": True,
                 "status": "open", "opened_at": now, "updated_at": now}
            )  # fmt: skip
            for k in search_keys(identity, province):
                lookup_rows.append(
                    {"case_id": case_id, "province": province, "kind": k.kind, "digest": protector.digest(k)}
                )
        async with engine.begin() as conn:
            await conn.execute(insert(cases), case_rows)
            await conn.execute(insert(keys_t), key_rows)
            await conn.execute(insert(lookups), lookup_rows)
    await engine.dispose()
    return names


async def measure(url: str, token: str, queries: list[str]) -> list[float]:
    timings = []
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        for q in queries[:20]:  # warm-up
            await c.get("/v1/cases", params={"q": q})
        for q in queries:
            began = time.perf_counter()
            r = await c.get("/v1/cases", params={"q": q, "limit": 20})
            timings.append((time.perf_counter() - began) * 1000)
            assert r.status_code == 200, r.text
    return timings


def report(label: str, timings: list[float]) -> None:
    p95 = statistics.quantiles(timings, n=100)[94]
    print(f"{label}: p50 {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms over {len(timings)} searches")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=400)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "platform"
        began = time.perf_counter()
        names = asyncio.run(seed(data_dir, args.cases))
        print(f"seeded {args.cases} cases in {time.perf_counter() - began:.0f} s")
        nats_server = NatsServer(Path(tmp) / "nats").start()
        asyncio.run(provision_streams(nats_server.url))
        p = Platform(data_dir=data_dir, nats_url=nats_server.url, ports={"intake": free_port()}, seed_demo=False,
                     extra_env={"OSSO_LOG_LEVEL": "WARNING"}, log_dir=Path(tmp) / "logs")  # fmt: skip
        p.start(services=("intake",))
        try:
            rnd = random.Random(11)
            token = p.token(Role.CENTRAL_ADMIN)
            full = [fold(rnd.choice(names)) for _ in range(args.queries)]
            report("full name (folded)", asyncio.run(measure(p.url("intake"), token, full)))
            given = [rnd.choice(GIVEN) for _ in range(args.queries // 2)]
            report("one word (given name)", asyncio.run(measure(p.url("intake"), token, given)))
            scoped = p.token(Role.CASEWORKER, "01")
            report(
                "full name, caseworker of 01",
                asyncio.run(measure(p.url("intake"), scoped, full[: args.queries // 2])),
            )
        finally:
            p.stop()
            nats_server.stop()


if __name__ == "__main__":
    main()
