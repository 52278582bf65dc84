"""Case registrations per second through intake's HTTP API: a real intake process (SQLite, real
nats-server, outbox relay publishing), a concurrent HTTP client posting full case files.

    .venv/bin/python bench/intake_registrations.py [--cases 2000] [--concurrency 32] [--rounds 3]
        [--workers 2] [--database-url postgresql+asyncpg://postgres@127.0.0.1/<empty database>]
        [--profile DIR]   (py-spy of the first round; bench/profile_summary.py DIR sums it up)

Prints registrations/s per round and the median (target: >= 400/s on the 2-core machine), and
the raw nats-py publish rate on the same server in the same run, to compare runs on a machine
whose speed varies from day to day.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.platform_bench import raw_baseline, start_profiles, stop_profiles
from deploy.runner import Platform, cpu_seconds, process_tree, provision_streams
from shared.auth import Role
from shared.natsserver import NatsServer, free_port

SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ"]
MIDDLE = ["Thị", "Ngọc", "Thu", "Thanh", "Minh", "Kim"]
GIVEN = ["Hoà", "Lan", "Mai", "Hương", "Trang", "Linh", "Hạnh", "Yến", "Thảo", "Nhung", "Vân", "Quế"]
PROVINCES = ["01", "31", "92", "40", "42"]


def letters(i: int) -> str:
    """A unique letters-only word for ``i`` (names have no digits)."""
    out = ""
    while True:
        i, r = divmod(i, 26)
        out += chr(97 + r)
        if not i:
            return out.capitalize()


def case_body(i: int, rnd: random.Random) -> dict[str, Any]:
    year = rnd.randint(1970, 2004)
    cccd = (
        f"0{rnd.choice(['01', '31', '92', '40'])}{(year // 100 - 19) * 2}{year % 100:02d}{i % 1_000_000:06d}"
    )
    return {
        "province": rnd.choice(PROVINCES),
        "channel": rnd.choice(["walk_in", "hotline", "online", "handover"]),
        "needs": rnd.sample(["legal", "health_education", "psychological", "livelihood", "children"], 2),
        "consent": {"referral": True, "sms": True},
        "woman": {
            "full_name": f"{rnd.choice(SURNAMES)} {rnd.choice(MIDDLE)} {rnd.choice(GIVEN)} {letters(i)}",
            "birth_year": year,
            "phones": [f"09{i % 100_000_000:08d}"],
            "cccd": cccd,
        },
        "story": {"migration_kind": "labour", "trafficking_status": "suspected"},
        "confirm_not_duplicate": True,  # random names repeat; the check still runs on every request
    }


async def run_round(url: str, token: str, start: int, n: int, concurrency: int) -> float:
    rnd = random.Random(start)
    # Bodies encoded before the clock starts: the bench measures intake, not its own JSON.
    bodies = [orjson.dumps(case_body(start + i, rnd)) for i in range(n)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    failures = 0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        while not queue.empty():
            body = queue.get_nowait()
            try:
                async with session.post(f"{url}/v1/cases", data=body, headers=headers) as r:
                    text = await r.read()
                    status = r.status
            except aiohttp.ClientError as exc:  # counted and shown, not a crash of the bench
                failures += 1
                if failures == 1:
                    print(f"  first failure: {exc!r}", file=sys.stderr)
                continue
            if status != 201:
                failures += 1
                if failures == 1:
                    print(f"  first failure: {status} {text[:300]!r}", file=sys.stderr)

    # aiohttp, not httpx: httpx spent more CPU per request (about 8 ms) than intake itself, and on
    # 2 cores the load generator's CPU is taken from the service it measures.
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        began = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    if failures:
        print(f"  {failures} requests failed", file=sys.stderr)
    return n / elapsed


def written_bytes(pid: int) -> int:
    """Bytes intake (and its workers) handed to write() so far: the WAL, checkpoints, logs."""
    total = 0
    for p in process_tree(pid):
        try:
            io = dict(line.split(": ") for line in Path(f"/proc/{p}/io").read_text().splitlines())
        except OSError:
            continue
        total += int(io["wchar"])
    return total


def batch_sizes(url: str) -> str:
    """Registrations per transaction, from intake's metrics (one worker's, when several)."""
    found = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("osso_group_commit_items_") and 'writer="registrations"' in line:
            found[line.split("{")[0].rsplit("_", 1)[1]] = float(line.rsplit(" ", 1)[1])
    if not found.get("count"):
        return "no group-commit metrics"
    return f"{found['sum']:.0f} registrations in {found['count']:.0f} transactions, {found['sum'] / found['count']:.1f} each"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--workers", type=int, default=1, help="intake processes on its port (OSSO_INTAKE_WORKERS)"
    )
    ap.add_argument(
        "--database-url",
        default="",
        help="intake's database (default: a fresh SQLite file), e.g. postgresql+asyncpg://postgres@127.0.0.1/bench",
    )
    ap.add_argument("--profile", type=Path, help="py-spy intake during the first round into DIR/intake.txt")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        nats_server = NatsServer(Path(tmp) / "nats").start()
        asyncio.run(provision_streams(nats_server.url))
        p = Platform(
            data_dir=Path(tmp) / "platform",
            nats_url=nats_server.url,
            ports={"intake": free_port()},
            seed_demo=False,
            extra_env={
                "OSSO_LOG_LEVEL": "WARNING",
                "OSSO_INTAKE_WORKERS": str(args.workers),
                "OSSO_INTAKE_DATABASE_URL": args.database_url,
            },
            log_dir=Path(tmp) / "logs",
        )
        p.start(services=("intake",))
        try:
            token = p.token(Role.CENTRAL_ADMIN)
            uvloop.run(run_round(p.url("intake"), token, 10_000_000, 200, args.concurrency))  # warm-up
            rates, cpu_ms = [], []
            pid = p.processes["intake"].pid
            nats_pid = nats_server.process.pid
            for r in range(args.rounds):
                cpu0, own0, nats0 = cpu_seconds(pid), time.process_time(), cpu_seconds(nats_pid)
                written0 = written_bytes(pid)
                spies = start_profiles({"intake": pid}, args.profile if r == 0 else None)
                rate = uvloop.run(
                    run_round(p.url("intake"), token, r * args.cases, args.cases, args.concurrency)
                )
                stop_profiles(spies)
                rates.append(rate)
                # CPU per registration does not depend on what else the machine runs: 1000 / ms is
                # what one core could do, whatever the wall-clock rate of this round.
                cpu_ms.append((cpu_seconds(pid) - cpu0) * 1000 / args.cases)
                # What else shares the machine's cores: the HTTP client of this bench, nats-server.
                client_ms = (time.process_time() - own0) * 1000 / args.cases
                nats_ms = (cpu_seconds(nats_pid) - nats0) * 1000 / args.cases
                # The disk's share: SQLite's WAL and checkpoints (PostgreSQL writes in its own processes).
                kib = (written_bytes(pid) - written0) / 1024 / args.cases
                print(
                    f"round {r + 1}: {rate:.0f} registrations/s, {cpu_ms[-1]:.1f} ms intake CPU each "
                    f"({args.cases} cases, {args.concurrency} concurrent, {args.workers} worker(s)); "
                    f"load generator {client_ms:.1f} ms, nats-server {nats_ms:.1f} ms each; "
                    f"intake wrote {kib:.1f} KiB each"
                )
            print(
                f"median: {statistics.median(rates):.0f} registrations/s, "
                f"{statistics.median(cpu_ms):.1f} ms intake CPU per registration"
            )
            print(f"group commit: {batch_sizes(p.url('intake'))}")
            # The machine's speed on the day, on the same server: nats-py publishing with acks
            # (what the relay does for each registration's events), no HTTP, no database.
            raw = [
                uvloop.run(raw_baseline(nats_server.url, 20_000, b"x" * 900))["publish_per_s"]
                for _ in range(3)
            ]
            print(
                f"raw nats-py publish on the same server: {', '.join(f'{r:,.0f}' for r in raw)} messages/s; "
                f"registrations/s / raw publish/s = {statistics.median(rates) / statistics.median(raw):.4f}"
            )
        finally:
            p.stop()
            nats_server.stop()
            errors = [
                line
                for line in (Path(tmp) / "logs" / "intake.log").read_text(errors="replace").splitlines()
                if "error" in line.lower() or "Traceback" in line
            ]
            for line in errors[:20]:  # why a request failed, if one did
                print(f"  intake log: {line[:300]}", file=sys.stderr)


if __name__ == "__main__":
    main()
