"""The rebuild's stream reader (``services/reporting/replay.py``) against a real nats-server: every
message once and in order, also when its handler makes reading wait (a rebuild writing out its
figures) for longer than the reader takes for a stalled stream."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import nats
import pytest
from nats.js.api import StreamConfig

from services.reporting import replay
from services.reporting.replay import Interceptor, read_stream
from shared.natsserver import NatsServer

N = 3500


@pytest.mark.timeout(60)
async def test_a_handler_that_makes_reading_wait_loses_nothing(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stream counts as stalled after half a second without a message; the handler then makes
    # reading wait three seconds. Without the pause being known, the reader would ask the server
    # whether the last message still exists, on a connection nobody reads: no answer in time.
    monkeypatch.setattr(replay, "IDLE_END", 0.5)
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream(timeout=1.0)
        await js.add_stream(StreamConfig(name="REPLAY_T", subjects=["replay.t.>"]))
        for start in range(0, N, 500):
            await asyncio.gather(
                *(js.publish(f"replay.t.{n}", str(n).encode()) for n in range(start, start + 500))
            )
        bodies: list[int] = []
        waits: list[float] = []

        async def slow() -> None:
            started = asyncio.get_running_loop().time()
            await asyncio.sleep(3.0)
            waits.append(asyncio.get_running_loop().time() - started)

        def handle(headers: dict[str, str] | None, body: bytes) -> Awaitable[None] | None:
            bodies.append(int(body))
            return slow() if len(bodies) in (1200, 2000) else None

        interceptor = Interceptor(nc)
        seen = await read_stream(js, interceptor, "REPLAY_T", 1, N, handle)
        assert seen == N
        assert bodies == sorted(bodies) and len(set(bodies)) == N  # every message once, in order
        assert len(waits) == 2 and not interceptor.paused
    finally:
        await nc.close()
