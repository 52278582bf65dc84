"""Reading each service's own database after a fault test, to check that nothing was lost or
doubled. (Tests may read every database; services never read each other's.)"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson

from deploy.runner import Platform
from shared.deadletter import list_dead_letters
from tests.helpers import auth

NEEDS = ("legal", "livelihood")  # every pilot province's demo directory has a partner for both
PROVINCES = ("01", "31", "92")


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(sql).fetchall()


@dataclass
class Load:
    """Posts cases from worker threads, retrying while intake is down."""

    platform: Platform
    total: int
    workers: int = 8
    created: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self.total:
                return None
            self._next += 1
            return self._next

    def _worker(self) -> None:
        headers = auth(self.platform)
        with httpx.Client(timeout=10, headers=headers) as client:
            while (i := self._take()) is not None:
                body = {
                    "province": PROVINCES[i % 3],
                    "channel": "hotline",
                    "needs": list(NEEDS),
                    "consent": {"referral": True, "sms": True},
                    "phone": f"09{i:08d}",
                }
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    try:
                        r = client.post(self.platform.url("intake") + "/v1/cases", json=body)
                    except httpx.HTTPError as exc:
                        self.errors[type(exc).__name__] += 1
                        time.sleep(0.2)
                        continue
                    if r.status_code == 201:
                        with self._lock:
                            self.created.append(r.json()["id"])
                        break
                    self.errors[str(r.status_code)] += 1
                    time.sleep(0.2)

    def run(self) -> ThreadPoolExecutor:
        pool = ThreadPoolExecutor(self.workers)
        for _ in range(self.workers):
            pool.submit(self._worker)
        return pool

    @property
    def progress(self) -> int:
        return len(self.created)


def check_exact(p: Platform, expected_cases: set[str]) -> dict[str, int]:
    """Every case has exactly one referral per need, every referral exactly one check-in, the
    summary counts each once, and no SMS was sent twice."""
    d = p.data_dir
    cases = {r[0] for r in rows(d / "intake.db", "SELECT id FROM cases")}
    # A POST whose response was lost may still have created its case: intake's table is the truth.
    assert expected_cases <= cases
    referrals = rows(d / "referral.db", "SELECT id, case_id, category FROM referral_tasks")
    per_need = Counter((case_id, category) for _, case_id, category in referrals)
    assert max(per_need.values()) == 1, "a need referred twice"
    assert set(per_need) <= {(c, n) for c in cases for n in NEEDS}
    summary = httpx.get(p.url("reporting") + "/v1/reports/summary", headers=auth(p)).json()["totals"]
    # The demo partners have capacities: a need gets exactly one referral or one "no partner".
    assert len(referrals) + summary["needs_unmatched"] == len(cases) * len(NEEDS), "a need lost"
    referral_ids = {r[0] for r in referrals}
    follow_ups = rows(d / "notification.db", "SELECT referral_id, template, status FROM follow_ups")
    per_template = Counter((ref, template) for ref, template, _ in follow_ups)
    assert {ref for ref, _ in per_template} == referral_ids, "a referral without its follow-up"
    assert max(per_template.values()) == 1, "a follow-up scheduled twice"
    outbox = d / "notification" / "sms-outbox.jsonl"
    sent = Counter(orjson.loads(line)["message_id"] for line in outbox.read_bytes().splitlines() if line)
    assert sent and max(sent.values()) == 1, "an SMS sent twice"
    assert p.nats_url
    letters = asyncio.run(_with_js(p.nats_url, list_dead_letters))
    assert letters == [], f"dead letters: {[(d.consumer, d.reason) for d in letters]}"
    assert summary["cases_opened"] == len(cases)
    assert summary["referrals_requested"] == len(referrals)
    assert summary["messages_scheduled"] == len(follow_ups)
    return {"cases": len(cases), "referrals": len(referrals), "follow_ups": len(follow_ups), "sms": len(sent)}


async def _with_js(url: str, fn: Any) -> Any:
    nc = await nats.connect(servers=url.split(","))
    try:
        return await fn(nc.jetstream())
    finally:
        await nc.close()


def settled(p: Platform, cases: int) -> bool:
    s = httpx.get(p.url("reporting") + "/v1/reports/summary", headers=auth(p), timeout=5).json()["totals"]
    referred = s["referrals_requested"]
    return (
        s["cases_opened"] >= cases
        and referred + s["needs_unmatched"] >= cases * len(NEEDS)
        and s["messages_scheduled"] >= referred
    )
