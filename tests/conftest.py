"""Fixtures that start real parts: a nats-server with JetStream from the wheel on a free port,
and the four services as separate processes with their own SQLite files."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.runner import SERVICES, Platform, provision_streams
from shared.natsserver import NatsServer, free_port

#: Fast failure handling in tests: three deliveries, short redelivery delay.
TEST_ENV = {
    "OSSO_MAX_DELIVER": "3",
    "OSSO_NAK_DELAY": "0.2",
    "OSSO_LOG_LEVEL": "INFO",
    # Follow-ups due at once (the plans say days) and sent at any hour the tests run (quiet hours
    # have their own tests with a controlled clock).
    "OSSO_NOTIFICATION_DELAY_SCALE": "0",
    "OSSO_NOTIFICATION_QUIET_HOURS_ENABLED": "false",
}


def start_nats(tmp: Path) -> NatsServer:
    server = NatsServer(tmp / "nats", log_file=tmp / "nats-server.log").start()
    asyncio.run(provision_streams(server.url))
    return server


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = start_nats(tmp_path)
    yield server
    server.stop()


def make_platform(tmp: Path, nats_url: str, **extra_env: str) -> Platform:
    return Platform(
        data_dir=tmp / "platform",
        nats_url=nats_url,
        ports={s: free_port() for s in SERVICES},
        extra_env={**TEST_ENV, **extra_env},
        log_dir=tmp / "logs",
    )


@pytest.fixture(scope="module")
def module_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = start_nats(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def platform(module_nats: NatsServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    p = make_platform(tmp_path_factory.mktemp("platform"), module_nats.url)
    p.start()
    yield p
    p.stop()


#: The machine's local PostgreSQL (trust auth for ``postgres`` on 127.0.0.1), for ``postgres``-marked tests.
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test module (dropped afterwards), as an async SQLAlchemy URL."""
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    import asyncpg

    name = f"osso_test_{uuid.uuid4().hex[:12]}"

    async def _admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def admin(sql: str) -> None:
        # In a thread of its own: async fixtures may ask for this one while the test loop runs.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _admin(sql)).result()

    try:
        admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no local PostgreSQL on 127.0.0.1:5432: {type(exc).__name__}")
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
