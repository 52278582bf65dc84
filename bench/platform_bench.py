"""``make bench``: the whole platform on its embedded defaults, measured against the raw nats-py
JetStream client on the same nats-server in the same run.

1. Raw baseline: publish with ack (pipelined) and pull-consume with ack, messages/s.
2. Closed loop: N cases as fast as the HTTP API takes them; cases/s until every case is fully
   processed (referrals created, follow-ups scheduled, summary updated).
3. Open loop at a fixed rate: latency from POST to the case showing in the summary (p50/p95/p99).
4. Per-service event rates (from each service's /metrics) and the platform's cost per event as a
   ratio to the raw client's publish+consume cost per message.

Results: a table on the terminal and JSON under bench/results/. Usage:
    .venv/bin/python bench/platform_bench.py [--cases 3000] [--rate 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as host
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import nats
import orjson
import uvloop
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from deploy.runner import SERVICES, Platform, cpu_seconds
from shared.auth import Role
from shared.natsserver import NatsServer, free_port

NEEDS = ["legal", "livelihood"]  # two needs: two referrals and two follow-ups per case
PROVINCES = ["01", "31", "92"]
RESULTS = Path(__file__).parent / "results"


def case_body(i: int) -> dict[str, Any]:
    return {
        "province": PROVINCES[i % len(PROVINCES)],
        "channel": "hotline",
        "needs": NEEDS,
        "consent": {"referral": True, "sms": True},
        "phone": f"09{i % 100_000_000:08d}",
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- 1. raw baseline --------------------------------------------------------------------------------


async def raw_baseline(url: str, n: int, payload: bytes) -> dict[str, float]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    name = "BENCH_RAW"
    await js.add_stream(StreamConfig(name=name, subjects=["bench.raw.>"], duplicate_window=120))
    try:
        start = time.perf_counter()
        window: list[asyncio.Future[Any]] = []
        for i in range(n):
            window.append(await js.publish_async("bench.raw.x", payload, headers={"Nats-Msg-Id": f"raw-{i}"}))
            if len(window) >= 1000:
                await asyncio.gather(*window)
                window.clear()
        await asyncio.gather(*window)
        publish_s = time.perf_counter() - start

        sub = await js.pull_subscribe(
            "bench.raw.x",
            durable="raw",
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=10_000),
        )
        got = 0
        start = time.perf_counter()
        while got < n:
            msgs = await sub.fetch(batch=100, timeout=5)
            for m in msgs:
                await m.ack()
            got += len(msgs)
        consume_s = time.perf_counter() - start
    finally:
        await js.delete_stream(name)
        await nc.close()
    return {
        "messages": n,
        "publish_per_s": n / publish_s,
        "consume_per_s": n / consume_s,
        "us_per_message": (publish_s + consume_s) / n * 1e6,
    }


# -- platform helpers ---------------------------------------------------------------------------------


def client_session(connections: int, timeout: float) -> aiohttp.ClientSession:
    """The load generator's HTTP client: aiohttp, because httpx spent more CPU per request than the
    intake request it made, and on a small machine that CPU is taken from the platform measured."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections), timeout=aiohttp.ClientTimeout(total=timeout)
    )


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


async def summary(client: aiohttp.ClientSession, p: Platform, token: str) -> dict[str, Any]:
    async with client.get(
        p.url("reporting") + "/v1/reports/summary", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        r.raise_for_status()
        return dict(await r.json())


async def applied_events(client: aiohttp.ClientSession, p: Platform) -> dict[str, float]:
    """Events each service applied so far (sum of its consumers), from /metrics."""
    out = {}
    for service in SERVICES:
        async with client.get(p.url(service) + "/metrics") as r:
            text = await r.text()
        total = 0.0
        for line in text.splitlines():
            if line.startswith("osso_events_consumed_total{") and 'outcome="applied"' in line:
                total += float(line.rsplit(" ", 1)[1])
        out[service] = total
    return out


async def post_cases(
    client: aiohttp.ClientSession, p: Platform, token: str, start: int, n: int, concurrency: int
) -> int:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(start, start + n):
        queue.put_nowait(i)
    failures = 0

    async def worker() -> None:
        nonlocal failures
        while not queue.empty():
            i = queue.get_nowait()
            async with client.post(
                p.url("intake") + "/v1/cases", data=orjson.dumps(case_body(i)), headers=headers(token)
            ) as r:
                await r.read()
                if r.status != 201:
                    failures += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


async def wait_processed(
    client: aiohttp.ClientSession, p: Platform, token: str, cases: int, timeout: float = 600
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = await summary(client, p, token)
        t = s["totals"]
        # The demo partners have capacities: a need gets a referral or a "no partner available".
        if (
            t["cases_opened"] >= cases
            and t["referrals_requested"] + t["needs_unmatched"] >= cases * len(NEEDS)
            and t["messages_scheduled"] >= t["referrals_requested"]
        ):
            return s
        await asyncio.sleep(0.02)
    raise TimeoutError(f"platform did not process {cases} cases within {timeout}s: {s['totals']}")


def process_ids(p: Platform, server: NatsServer) -> dict[str, int]:
    pids = {s: proc.pid for s, proc in p.processes.items()}
    if server.process is not None:
        pids["nats-server"] = server.process.pid
    pids["load generator"] = os.getpid()
    return pids


def start_profiles(pids: dict[str, int], out: Path | None) -> list[subprocess.Popen[bytes]]:
    """py-spy on every service process for the closed loop (``--profile DIR``): raw stacks that
    show where each process spends its time (``bench/profile_summary.py DIR`` sums them up)."""
    if out is None:
        return []
    out.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    return [
        subprocess.Popen(
            [
                str(spy),
                "record",
                "--subprocesses",
                "-p",
                str(pid),
                "-r",
                "100",
                "-f",
                "raw",
                "-o",
                str(out / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
        if name in SERVICES
    ]


def stop_profiles(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    for proc in procs:
        proc.wait(30)


# -- 2. closed loop -----------------------------------------------------------------------------------


async def closed_loop(
    p: Platform, token: str, cases: int, concurrency: int, pids: dict[str, int], profile: Path | None = None
) -> dict[str, Any]:
    async with client_session(concurrency, 60) as client:
        base = (await summary(client, p, token))["totals"]["cases_opened"]
        events_before = await applied_events(client, p)
        spies = start_profiles(pids, profile)
        cpu_before = {name: cpu_seconds(pid, name in SERVICES) for name, pid in pids.items()}
        start = time.perf_counter()
        failures = await post_cases(client, p, token, 1_000_000, cases, concurrency)
        accepted_s = time.perf_counter() - start
        await wait_processed(client, p, token, base + cases)
        elapsed = time.perf_counter() - start
        cpu_after = {name: cpu_seconds(pid, name in SERVICES) for name, pid in pids.items()}
        stop_profiles(spies)
        events_after = await applied_events(client, p)
    # CPU per case, per process: what bounds throughput on a machine with a given number of cores.
    cpu_ms_per_case = {name: (cpu_after[name] - cpu_before[name]) * 1000 / cases for name in pids}
    per_service = {s: (events_after[s] - events_before[s]) / elapsed for s in SERVICES}
    total_events = sum(events_after[s] - events_before[s] for s in SERVICES)
    return {
        "cases": cases,
        "concurrency": concurrency,
        "http_failures": failures,
        "seconds": elapsed,
        "cases_per_s_accepted": cases / accepted_s,
        "cases_per_s_processed": cases / elapsed,
        "events_applied": total_events,
        "events_per_s_by_service": per_service,
        "us_per_event": elapsed / total_events * 1e6 if total_events else None,
        "cpu_ms_per_case": cpu_ms_per_case,
        # The platform's own processes; the load generator's share is shown beside it.
        "cpu_bound_cases_per_s": (os.cpu_count() or 1)
        * 1000
        / sum(ms for name, ms in cpu_ms_per_case.items() if name != "load generator"),
    }


# -- 3. open loop -------------------------------------------------------------------------------------


async def open_loop(p: Platform, token: str, rate: float, seconds: float) -> dict[str, Any]:
    """POST at ``rate`` cases/s; a poller records when the summary reflects the k-th case."""
    n = int(rate * seconds)
    async with client_session(64, 30) as client:
        base = (await summary(client, p, token))["totals"]["cases_opened"]
        posted: list[float] = []
        seen: dict[int, float] = {}
        done = asyncio.Event()

        async def poll() -> None:
            while not done.is_set():
                count = (await summary(client, p, token))["totals"]["cases_opened"] - base
                now = time.perf_counter()
                for k in range(len(seen) + 1, count + 1):
                    seen[k] = now
                if count >= n:
                    done.set()
                await asyncio.sleep(0.02)  # each poll is a summary query: polling harder loads reporting

        async def one(i: int) -> None:
            async with client.post(
                p.url("intake") + "/v1/cases",
                data=orjson.dumps(case_body(2_000_000 + i)),
                headers=headers(token),
            ) as r:
                await r.read()
            posted.append(time.perf_counter())

        poller = asyncio.create_task(poll())
        start = time.perf_counter()
        tasks = []
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        await asyncio.wait_for(done.wait(), timeout=120)
        poller.cancel()
    # Cases are counted in arrival order: the k-th POST to complete is the k-th case counted.
    posted.sort()
    latencies = [(seen[k + 1] - posted[k]) * 1000 for k in range(n)]
    return {
        "rate_per_s": rate,
        "cases": n,
        "p50_ms": statistics.median(latencies),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
    }


# -- main ---------------------------------------------------------------------------------------------


def run(
    cases: int, rate: float, seconds: float, concurrency: int, raw_messages: int, profile: Path | None = None
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="osso-bench-"))
    server = NatsServer(tmp / "nats", log_file=tmp / "nats.log").start()
    p = Platform(
        data_dir=tmp / "platform",
        nats_url=server.url,
        ports={s: free_port() for s in SERVICES},
        log_dir=tmp / "logs",
        extra_env={"OSSO_LOG_LEVEL": "WARNING"},
    )
    try:
        p.start()
        token = p.token(Role.CENTRAL_ADMIN)
        payload = b"x" * 600  # about the size of a case.opened event
        raw = uvloop.run(raw_baseline(server.url, raw_messages, payload))
        pids = process_ids(p, server)
        uvloop.run(closed_loop(p, token, min(200, cases), concurrency, pids))  # warm-up
        closed = uvloop.run(closed_loop(p, token, cases, concurrency, pids, profile))
        opened = uvloop.run(open_loop(p, token, rate, seconds))
    finally:
        p.stop()
        server.stop()
    ratio = closed["us_per_event"] / raw["us_per_message"] if closed["us_per_event"] else None
    return {
        "at": datetime.now(UTC).isoformat(),
        "machine": {"cores": os.cpu_count(), "python": host.python_version(), "system": host.platform()},
        "raw_nats": raw,
        "closed_loop": closed,
        "open_loop": opened,
        "platform_cost_ratio": ratio,
    }


def print_table(r: dict[str, Any]) -> None:
    raw, closed, opened = r["raw_nats"], r["closed_loop"], r["open_loop"]
    rows = [
        ("machine cores", f"{r['machine']['cores']}"),
        ("raw nats-py publish+ack", f"{raw['publish_per_s']:,.0f} msg/s"),
        ("raw nats-py pull+ack", f"{raw['consume_per_s']:,.0f} msg/s"),
        ("raw cost per message", f"{raw['us_per_message']:.1f} µs"),
        ("closed loop: cases accepted (HTTP)", f"{closed['cases_per_s_accepted']:,.0f} cases/s"),
        ("closed loop: cases fully processed", f"{closed['cases_per_s_processed']:,.0f} cases/s"),
        ("closed loop: events applied", f"{closed['events_applied']:,.0f} in {closed['seconds']:.1f} s"),
        *(
            (f"  {service} events applied", f"{rate:,.0f} /s")
            for service, rate in closed["events_per_s_by_service"].items()
        ),
        ("platform cost per event", f"{closed['us_per_event']:.1f} µs"),
        *((f"  CPU per case: {name}", f"{ms:.1f} ms") for name, ms in closed["cpu_ms_per_case"].items()),
        ("  CPU bound (cores × 1000 / platform ms)", f"{closed['cpu_bound_cases_per_s']:,.0f} cases/s"),
        ("platform cost / raw cost", f"{r['platform_cost_ratio']:.1f}×"),
        (f"open loop {opened['rate_per_s']:.0f} cases/s: POST→summary p50", f"{opened['p50_ms']:.0f} ms"),
        ("  p95", f"{opened['p95_ms']:.0f} ms"),
        ("  p99", f"{opened['p99_ms']:.0f} ms"),
    ]
    width = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{width}}  {b}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--raw-messages", type=int, default=20_000)
    parser.add_argument("--profile", type=Path, help="py-spy every service during the closed loop into DIR")
    args = parser.parse_args()
    result = run(args.cases, args.rate, args.seconds, args.concurrency, args.raw_messages, args.profile)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"platform-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(result, indent=2))
    print_table(result)
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
