"""Replicas sharing one database: one outbox relay publishes, the others wait to take over
(SQLite file lock, PostgreSQL advisory lock); a follower's commits reach the leader through
NOTIFY on PostgreSQL; a leader whose connection dies hands over."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import nats
import orjson
import pytest
from nats.js import JetStreamContext
from sqlalchemy import MetaData, insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_schema, make_engine, make_sessionmaker, plumbing_tables
from shared.lease import AdvisoryLease, FileLease, SoleLease, advisory_key, relay_lease
from shared.natsserver import NatsServer
from shared.outbox import OutboxRelay
from tests.helpers import aeventually

STREAM = "LEASETEST"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class Replica:
    """One process's view: its own engine, lease and relay on the shared database."""

    engine: AsyncEngine
    relay: OutboxRelay
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.relay.run())

    async def stop(self) -> None:
        self.relay.stop()
        if self.task is not None:
            await self.task
        await self.engine.dispose()


@pytest.fixture
async def js(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(name=STREAM, subjects=["leasetest.>"])
    yield js
    await nc.close()


async def stream_ids(js: JetStreamContext) -> list[str]:
    """Every event id in the stream, in stream order (copies dropped by the server included once)."""
    info = await js.stream_info(STREAM)
    ids = []
    for seq in range(1, info.state.last_seq + 1):
        msg = await js.get_msg(STREAM, seq)
        assert msg.headers is not None
        ids.append(msg.headers["Nats-Msg-Id"])
    return ids


async def commit_events(engine: AsyncEngine, n: int) -> list[str]:
    """Write ``n`` outbox rows as a service's transaction would; return their event ids."""
    outbox = plumbing_tables(MetaData()).outbox
    ids = [uuid.uuid4().hex for _ in range(n)]
    now = datetime.now(UTC)
    rows = [
        {
            "event_id": i,
            "subject": "leasetest.event",
            "headers": orjson.dumps({"Nats-Msg-Id": i}).decode(),
            "body": b"{}",
            "created_at": now,
            "attempts": 0,
        }
        for i in ids
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(outbox), rows)
    return ids


Factory = Callable[..., Replica]
ONLY_POSTGRES = pytest.mark.parametrize(
    "replicas", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def replicas(
    request: pytest.FixtureRequest, tmp_path: Path, js: JetStreamContext
) -> AsyncIterator[Factory]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
    first = make_engine(url)
    metadata = MetaData()
    plumbing_tables(metadata)
    async with first.begin() as conn:
        await conn.run_sync(metadata.drop_all)
    await create_schema(first, metadata)
    await first.dispose()
    made: list[Replica] = []

    def replica(**relay: float) -> Replica:
        engine = make_engine(url)
        lease = relay_lease(engine.url, "leasetest")
        assert not isinstance(lease, SoleLease)
        out = OutboxRelay(
            "leasetest", make_sessionmaker(engine), plumbing_tables(MetaData()), js, lease=lease, **relay
        )
        made.append(Replica(engine, out))
        return made[-1]

    yield replica
    for r in made:
        await r.stop()


async def test_one_relay_publishes_what_every_replica_commits(
    replicas: Factory, js: JetStreamContext
) -> None:
    a, b = replicas(), replicas()
    ids = await commit_events(a.engine, 60)  # both relays will find all of them unsent at start
    a.start()
    b.start()
    await aeventually(lambda: _has(js, ids), timeout=15)
    await asyncio.sleep(0.5)  # the follower's polls have come and gone
    # Without the lease each relay publishes the 60 rows it found (the server drops the copies).
    assert sorted([a.relay.published, b.relay.published]) == [0, 60]
    assert sorted([a.relay.leading, b.relay.leading]) == [False, True]

    more = await commit_events(b.engine, 20)  # the follower's own commits
    b.relay.wake()
    await aeventually(lambda: _has(js, ids + more), timeout=15)
    assert a.relay.published + b.relay.published == 80
    assert await stream_ids(js) == ids + more  # in commit order, once each


async def test_a_follower_takes_over_when_the_leader_stops(replicas: Factory, js: JetStreamContext) -> None:
    a, b = replicas(), replicas()
    a.start()
    await aeventually(lambda: _true(a.relay.leading))
    b.start()
    first = await commit_events(a.engine, 5)
    a.relay.wake()
    await aeventually(lambda: _has(js, first))
    assert b.relay.published == 0

    await a.stop()  # its lease is released as the relay ends (a process that dies: the same)
    later = await commit_events(b.engine, 5)
    b.relay.wake()
    await aeventually(lambda: _has(js, first + later), timeout=15)
    assert b.relay.leading and b.relay.published == 5


@ONLY_POSTGRES
async def test_a_followers_commit_wakes_the_leader_at_once(replicas: Factory, js: JetStreamContext) -> None:
    # Polls 60 s apart: only the follower's NOTIFY can bring its events out within seconds.
    a, b = replicas(poll_interval=60.0), replicas(poll_interval=60.0)
    a.start()
    await aeventually(lambda: _true(a.relay.leading))
    b.start()
    await asyncio.sleep(0.2)
    ids = await commit_events(b.engine, 3)
    b.relay.wake()
    await aeventually(lambda: _has(js, ids), timeout=5)
    assert a.relay.published == 3 and b.relay.published == 0


@ONLY_POSTGRES
async def test_a_leader_whose_connection_dies_hands_over(replicas: Factory, js: JetStreamContext) -> None:
    a, b = replicas(), replicas()
    a.start()
    await aeventually(lambda: _true(a.relay.leading))
    b.start()
    lease = a.relay.lease
    assert isinstance(lease, AdvisoryLease)
    pid = lease.backend_pid
    admin = await asyncpg.connect(PG_DSN)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()

    # Exactly one leads again (the old leader noticed it lost the lock), and events still leave.
    def handed_over() -> bool:
        # backend_pid is None while the old connection is closed: a has not leased again yet.
        a_again = a.relay.leading and lease.backend_pid not in (None, pid)
        return a_again or (b.relay.leading and not a.relay.leading)

    await aeventually(lambda: _true(handed_over()), timeout=15)
    for _ in range(5):
        assert sorted([a.relay.leading, b.relay.leading]) == [False, True]
        await asyncio.sleep(0.3)
    ids = await commit_events(a.engine, 4)
    a.relay.wake()
    b.relay.wake()
    await aeventually(lambda: _has(js, ids), timeout=15)


def test_each_database_gets_the_lease_its_replicas_can_share(tmp_path: Path) -> None:
    lease = relay_lease(make_url(f"sqlite+aiosqlite:///{tmp_path}/intake.db"), "intake")
    assert isinstance(lease, FileLease) and lease.path == Path(f"{tmp_path}/intake.db-outbox.lock")
    assert isinstance(relay_lease(make_url("sqlite+aiosqlite://"), "intake"), SoleLease)
    assert isinstance(relay_lease(make_url("postgresql+asyncpg://u:p@h/db"), "intake"), AdvisoryLease)
    assert isinstance(relay_lease(make_url("postgresql+psycopg://u:p@h/db"), "intake"), SoleLease)
    # The key must be the same in every process and release (Python's hash() is salted per process).
    assert advisory_key("osso-outbox:intake") == 2871355779673884506


async def _has(js: JetStreamContext, ids: list[str]) -> bool:
    return set(ids) <= set(await stream_ids(js))


async def _true(value: bool) -> bool:
    return value
