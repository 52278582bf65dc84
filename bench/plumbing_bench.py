"""What the shared plumbing costs per event, against raw nats-py on the same server, same run.

- publish: the outbox relay (rows committed in SQLite, published in order with acks, marked sent)
  vs raw ``publish_async`` with acks;
- consume: a FastStream batch pull subscriber through ``EventConsumer`` (CloudEvents decode and
  validation, one savepoint per event, inbox row for idempotency, commit, then ack) with a no-op
  effect vs raw ``fetch`` + ``ack``.

Each measurement is repeated; medians are reported. Usage:
    .venv/bin/python bench/plumbing_bench.py [--events 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from faststream.nats import NatsRouter
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig
from sqlalchemy import MetaData, func, select

from deploy.runner import provision_streams
from shared.envelope import Envelope, encode
from shared.events import CaseOpened, ConsentSnapshot
from shared.logs import configure_logging
from shared.natsserver import NatsServer
from shared.runtime import Runtime
from shared.settings import BusSettings, PlatformSettings, ServiceSettings
from shared.streams import CASE
from shared.uow import UnitOfWork
from shared.vocab import Channel, ServiceCategory

RESULTS = Path(__file__).parent / "results"


def event(i: int) -> CaseOpened:
    return CaseOpened(
        case_id=str(uuid.uuid4()),
        province=("01", "31", "92")[i % 3],
        channel=Channel.HOTLINE,
        needs=[ServiceCategory.LEGAL, ServiceCategory.LIVELIHOOD],
        consent=ConsentSnapshot(referral=True, sms=True),
        opened_at=datetime.now(UTC),
    )


async def raw_publish(js: Any, n: int) -> float:
    messages = [encode(event(i)) for i in range(n)]
    start = time.perf_counter()
    futures = [await js.publish_async(m.subject, m.body, headers=m.headers) for m in messages]
    await asyncio.gather(*futures)
    return n / (time.perf_counter() - start)


async def raw_consume(js: Any, n: int, durable: str) -> float:
    sub = await js.pull_subscribe(
        "osso.case.>",
        durable=durable,
        stream=CASE.name,
        config=ConsumerConfig(ack_policy=JsAckPolicy.EXPLICIT, max_ack_pending=10_000),
    )
    got = 0
    start = time.perf_counter()
    while got < n:
        msgs = await sub.fetch(batch=100, timeout=5)
        for m in msgs:
            await m.ack()
        got += len(msgs)
    rate = n / (time.perf_counter() - start)
    await sub.unsubscribe()
    return rate


def runtime(tmp: Path, url: str, name: str) -> Runtime:
    settings = ServiceSettings(
        database_url=f"sqlite+aiosqlite:///{tmp / f'{name}.db'}",
        bus=BusSettings(nats_url=url),
        platform=PlatformSettings(data_dir=tmp),
    )
    return Runtime(name, settings, MetaData())


async def relay_publish(tmp: Path, url: str, n: int, run: int) -> float:
    rt = runtime(tmp, url, f"relay{run}")
    await rt.start()
    try:
        rt.relay.stop()  # measure a drain of a full outbox, not the background loop
        async with rt.uow() as uow:
            uow.emit(*(event(i) for i in range(n)))
            await uow.commit()
        start = time.perf_counter()
        while await rt.relay.publish_pending():
            pass
        return n / (time.perf_counter() - start)
    finally:
        await rt.stop()


async def platform_consume(tmp: Path, url: str, n: int, run: int) -> float:
    rt = runtime(tmp, url, f"consumer{run}")
    durable = f"bench-consumer-{run}"

    async def no_op(_uow: UnitOfWork, _env: Envelope) -> None:
        return None

    router = NatsRouter()
    rt.subscribe(router, "osso.case.>", rt.event_consumer(durable, CASE.name, no_op), "bench")
    rt.include(router)
    await rt.start()
    start = time.perf_counter()
    try:
        inbox = rt.tables.inbox
        while True:
            async with rt.sessions() as session:
                done = (await session.execute(select(func.count()).select_from(inbox))).scalar_one()
            if done >= n:
                break
            await asyncio.sleep(0.01)
        return n / (time.perf_counter() - start)
    finally:
        await rt.stop()


async def main_async(n: int, repeat: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="osso-plumbing-"))
    results: dict[str, list[float]] = {
        "raw_publish": [],
        "relay_publish": [],
        "raw_consume": [],
        "platform_consume": [],
    }
    for run in range(repeat):
        server = NatsServer(tmp / f"nats{run}").start()
        try:
            await provision_streams(server.url)
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            results["raw_publish"].append(await raw_publish(js, n))
            results["relay_publish"].append(await relay_publish(tmp, server.url, n, run))
            # The stream now holds 2n events; each consumer reads n of them from the start.
            results["raw_consume"].append(await raw_consume(js, n, f"raw-{run}"))
            await nc.close()
            results["platform_consume"].append(await platform_consume(tmp, server.url, n, run))
        finally:
            server.stop()
    med = {k: statistics.median(v) for k, v in results.items()}
    return {
        "events": n,
        "repeat": repeat,
        "runs": results,
        "median_per_s": med,
        "publish_cost_ratio": med["raw_publish"] / med["relay_publish"],
        "consume_cost_ratio": med["raw_consume"] / med["platform_consume"],
    }


def main() -> None:
    configure_logging("bench", "WARNING")  # as in the services: no per-message log lines
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    r = asyncio.run(main_async(args.events, args.repeat))
    m = r["median_per_s"]
    print(f"events per run: {r['events']}, runs: {r['repeat']} (medians)")
    print(
        f"publish  raw nats-py {m['raw_publish']:>9,.0f}/s   outbox relay      {m['relay_publish']:>9,.0f}/s   cost ×{r['publish_cost_ratio']:.2f}"
    )
    print(
        f"consume  raw nats-py {m['raw_consume']:>9,.0f}/s   EventConsumer     {m['platform_consume']:>9,.0f}/s   cost ×{r['consume_cost_ratio']:.2f}"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"plumbing-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(r, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
