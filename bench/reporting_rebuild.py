"""Rebuild speed of the reporting projection, in events per second (target: >= 20,000).

Publishes a generated two-year history (the acceptance test's generator; ~11 events per case) to
a fresh nats-server, then runs ``osso reporting rebuild``'s code (``services.reporting.rebuild``)
against a fresh SQLite file, several times. Each run reads every stream from sequence 1 with an
ephemeral pull consumer, applies the events in memory, bulk-writes fresh tables and swaps
them in. Prints events/s for the whole rebuild and for the replay alone (read + decode + apply),
and two ceilings (``--runs`` times, median): the rebuild's own reader (``replay.py``: a pull
consumer whose messages are taken from nats-py's parser) handing the same messages to a callback
that does nothing with them, and nats-py's public API alone (an ordered push consumer, a callback
per message), the fastest way through nats-py without reaching into it.

Also prints the rebuild's peak memory (the events are generated and published by another process,
so the figure is the rebuilds' own), and that of its spreading process (``spreader.py``: it spreads
the figures over their cells and writes the cube), and how often a run sent the figures it kept in
memory to be spread (every ``--figures``, ``rebuild_figures``: 50,000 by default, and once at the
end). "Replay alone" is the time to read, decode and apply the events and send their figures.

    .venv/bin/python bench/reporting_rebuild.py [--cases 5000] [--runs 3] [--figures N]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1/<empty database>]

With ``--database-url`` the rebuilds write to that database (production's PostgreSQL: bulk-loaded
with ``COPY``, primary keys and indexes built after the rows) instead of a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats
from nats.aio.msg import Msg

from deploy.runner import provision_streams
from services.reporting.rebuild import STREAMS, rebuild
from services.reporting.replay import Interceptor, read_stream, stream_sequence
from services.reporting.settings import ReportingSettings
from shared.envelope import encode
from shared.natsserver import NatsServer
from shared.settings import BusSettings, PlatformSettings
from tests.unit.test_reporting_history import PHASES, generate


async def publish(url: str, n_cases: int) -> int:
    nc = await nats.connect(url)
    js = nc.jetstream()
    total = 0
    for block in range(0, n_cases, 1000):
        events = generate(min(1000, n_cases - block), seed=500 + block).events
        for start in range(0, len(events), 1000):
            acks = []
            for event in events[start : start + 1000]:
                message = encode(event)
                acks.append(js.publish(message.subject, message.body, headers=message.headers))
            await asyncio.gather(*acks)
        total += len(events)
    await nc.close()
    return total


def publish_elsewhere(url: str, n_cases: int) -> None:
    """:func:`publish` in a process of its own, so that this one's peak memory is the rebuilds'."""
    process = multiprocessing.get_context("spawn").Process(target=_publish_main, args=(url, n_cases))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise SystemExit(f"publishing failed ({process.exitcode})")


def _publish_main(url: str, n_cases: int) -> None:
    asyncio.run(publish(url, n_cases))


async def raw_read_rate(url: str) -> float:
    """Messages per second the rebuild's reader delivers from every stream (in parallel) to a
    callback that ignores them."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=30.0)
        interceptor = Interceptor(nc)
        lasts = {s: (await js.stream_info(s)).state.last_seq for s in STREAMS}
        started = time.perf_counter()
        counts = await asyncio.gather(
            *(read_stream(js, interceptor, s, 1, lasts[s], lambda headers, body: None) for s in STREAMS)
        )
        return sum(counts) / (time.perf_counter() - started)
    finally:
        await nc.close()


async def nats_py_read_rate(url: str) -> float:
    """Messages per second nats-py's public API delivers from every stream (in parallel): an
    ordered push consumer per stream, flow-controlled, to a callback that ignores them.

    From about 20,000 cases on, the four streams pushed at once outrun nats-py's reading: the server
    cuts the connection ("Slow Consumer Detected: MaxPending of 67108864 Exceeded" in its log; nats-py
    prints "unexpected EOF"), nats-py reconnects and the ordered consumers resume where they were.
    This figure includes that; the rebuild's pull reader keeps at most 3 batches of 1,000 per stream
    in flight and is never cut."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=30.0)
        lasts = {s: (await js.stream_info(s)).state.last_seq for s in STREAMS}

        async def read(stream: str) -> int:
            done, seen = asyncio.Event(), 0

            async def on_message(m: Msg) -> None:
                nonlocal seen
                seen += 1
                if stream_sequence(m.reply.encode()) >= lasts[stream]:
                    done.set()

            sub = await js.subscribe(
                ">",
                stream=stream,
                cb=on_message,
                ordered_consumer=True,
                pending_msgs_limit=100_000,
                pending_bytes_limit=256 * 1024 * 1024,
            )
            await done.wait()
            await sub.unsubscribe()
            return seen

        started = time.perf_counter()
        counts = await asyncio.gather(*(read(s) for s in STREAMS))
        return sum(counts) / (time.perf_counter() - started)
    finally:
        await nc.close()


async def main(n_cases: int, runs: int, figures: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        server = NatsServer(tmp / "nats", log_file=tmp / "nats.log").start()
        try:
            await provision_streams(server.url)
            started = time.perf_counter()
            await asyncio.to_thread(publish_elsewhere, server.url, n_cases)
            print(f"published {n_cases:,} cases in {time.perf_counter() - started:.0f} s")
            settings = ReportingSettings(
                database_url=database_url or f"sqlite+aiosqlite:///{tmp / 'reporting.db'}",
                bus=BusSettings(nats_url=server.url),
                platform=PlatformSettings(data_dir=tmp),
                phases=PHASES,
                rebuild_figures=figures,
            )
            totals, replays, children = [], [], []
            for run in range(runs):
                result = await rebuild(settings)
                totals.append(result.events_per_second)
                replays.append(result.events / result.replay_seconds)
                children.append(result.spreader_peak_mib)
                print(
                    f"  run {run + 1}: {result.events:,} events in {result.seconds:.2f} s "
                    f"({result.events_per_second:,.0f} events/s; replay alone {replays[-1]:,.0f} events/s; "
                    f"figures sent to be spread {result.spreads} times; {result.cube_rows:,} cube rows)"
                )
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
            print(
                f"  peak memory of this process (the rebuilds): {peak:,.0f} MiB; "
                f"of their spreading processes: {max(children):,.0f} MiB"
            )
            raws = [await raw_read_rate(server.url) for _ in range(runs)]
            publics = [await nats_py_read_rate(server.url) for _ in range(runs)]
            print(f"  rebuild's reader alone: {', '.join(f'{r:,.0f}' for r in raws)} messages/s")
            print(f"  nats-py public API alone: {', '.join(f'{r:,.0f}' for r in publics)} messages/s")
            print(
                f"rebuild: median {statistics.median(totals):,.0f} events/s "
                f"(replay alone: median {statistics.median(replays):,.0f} events/s; "
                f"reader alone: median {statistics.median(raws):,.0f} messages/s; "
                f"nats-py public API alone: median {statistics.median(publics):,.0f} messages/s)"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--figures", type=int, default=ReportingSettings().rebuild_figures)
    parser.add_argument(
        "--database-url",
        help="the rebuilds' database (default: a fresh SQLite file), e.g. postgresql+asyncpg://postgres@127.0.0.1/bench",
    )
    args = parser.parse_args()
    asyncio.run(main(args.cases, args.runs, args.figures, args.database_url))
