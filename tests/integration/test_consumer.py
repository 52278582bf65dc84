"""The idempotent consumer against a real nats-server and SQLite: a message whose ack was lost
(the process died after its commit) is redelivered, and its effect still happens once."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from shared.envelope import Envelope
from shared.natsserver import NatsServer
from shared.uow import UnitOfWork
from tests.helpers import aeventually
from tests.integration.runtime_helpers import bare_runtime, metric_total, reporting_runtime
from tests.integration.test_delivery_guarantees import opened, publish


async def test_redelivery_after_a_lost_ack_is_applied_once(
    tmp_path: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = reporting_runtime(tmp_path, nats_server.url, ack_wait=1.0)
    real_ack = Msg.ack
    lost: list[str] = []

    async def ack_lost_once(self: Msg) -> None:
        if not lost:
            lost.append(self.headers["ce-id"] if self.headers else "")
            return  # as if the process died between its commit and the ack
        await real_ack(self)

    monkeypatch.setattr(Msg, "ack", ack_lost_once)
    await rt.start()
    try:
        await publish(nats_server.url, opened())
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()

        async def redelivered_and_acked() -> bool:
            info = await js.consumer_info("OSSO_CASE", "reporting-case-events")
            # Delivered twice (the lost ack made the server redeliver), and now acknowledged.
            return info.delivered.consumer_seq == 2 and info.num_ack_pending == 0 and info.num_pending == 0

        await aeventually(redelivered_and_acked, timeout=10)
        await nc.close()
        assert lost, "the first ack must have been dropped"
        assert await metric_total(rt, "cases_opened") == 1
    finally:
        await rt.stop()


async def test_no_message_waits_for_ack_wait_in_a_partial_batch(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """Regression for the FastStream/nats-py timeout mismatch (shared/compat.py): an event that
    arrives alone, while a batch waits to fill, must be applied at once, not after ack_wait (30 s)."""
    rt = reporting_runtime(tmp_path, nats_server.url, ack_wait=30.0, batch_timeout=0.02)
    await rt.start()
    try:
        rng = random.Random(7)
        for n in range(1, 21):
            await asyncio.sleep(rng.uniform(0.05, 0.3))  # idle: the consumer is mid-fetch
            await publish(nats_server.url, opened())
            start = time.monotonic()

            async def applied(expected: int = n) -> bool:
                return await metric_total(rt, "cases_opened") == expected

            await aeventually(applied, timeout=3)
            assert time.monotonic() - start < 3
    finally:
        await rt.stop()


async def test_an_idle_consumer_does_not_poll(tmp_path: Path, nats_server: NatsServer) -> None:
    """An idle consumer waits on one long pull (shared/compat.py) instead of asking the server for
    a batch every ``batch_timeout``: about 100 requests a second for nothing, before. It still
    takes an event at once when one comes."""
    applied: list[str] = []

    async def apply(_uow: UnitOfWork, env: Envelope) -> None:
        applied.append(env.id)

    rt = bare_runtime(tmp_path, nats_server.url, "idle", apply, batch_timeout=0.01, idle_poll=5.0)
    await rt.start()
    nc = await nats.connect(nats_server.url)
    pulls: list[Msg] = []

    async def count(msg: Msg) -> None:
        pulls.append(msg)

    await nc.subscribe("$JS.API.CONSUMER.MSG.NEXT.OSSO_CASE.idle", cb=count)
    try:
        await asyncio.sleep(2.0)
        assert len(pulls) <= 2, f"{len(pulls)} pull requests in 2 s while idle"
        start = time.monotonic()
        await publish(nats_server.url, opened())

        async def one() -> bool:
            return len(applied) == 1

        await aeventually(one, timeout=3)
        assert time.monotonic() - start < 1.0  # the long pull hands it over at once
    finally:
        await nc.close()
        await rt.stop()


def test_event_ids_are_uuids() -> None:
    assert uuid.UUID(opened().case_id)


async def test_a_failing_event_in_a_batch_is_rolled_back_alone(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """Nine good events and one poison in the same fetched batch: the nine are applied once (the
    fast path is redone event by event), the poison is redelivered and finally dead-lettered."""
    for i in range(10):
        await publish(nats_server.url, opened(province="99" if i == 4 else "01"))
    rt = reporting_runtime(tmp_path, nats_server.url, max_deliver=2, nak_delay=0.1, batch_size=50)
    await rt.start()  # started after publishing: all ten arrive in one batch
    try:

        async def nine() -> bool:
            return await metric_total(rt, "cases_opened") == 9

        await aeventually(nine, timeout=10)
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()

        async def dead_lettered() -> bool:
            info = await js.stream_info("OSSO_DLQ")
            return info.state.messages == 1

        await aeventually(dead_lettered, timeout=15)
        letter = await js.get_msg("OSSO_DLQ", 1)
        assert letter.headers and "unknown province '99'" in letter.headers["osso-dlq-reason"]
        await nc.close()
        assert await metric_total(rt, "cases_opened") == 9
    finally:
        await rt.stop()


async def test_a_batch_slower_than_ack_wait_is_not_redelivered(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """The consumer tells the server it is still working (``in_progress``) while a batch is
    applied, so a slow batch is neither redelivered to another replica nor dead-lettered."""
    applied: list[str] = []

    async def slow(_uow: UnitOfWork, env: Envelope) -> None:
        await asyncio.sleep(2.5)  # longer than ack_wait below
        applied.append(env.id)

    rt = bare_runtime(tmp_path, nats_server.url, "slow", slow, ack_wait=1.0, max_deliver=2)
    await publish(nats_server.url, opened())
    await rt.start()
    try:
        await aeventually(lambda: _true(len(applied) == 1), timeout=10)
        await asyncio.sleep(1.5)  # a redelivery would have happened by now
        nc = await nats.connect(nats_server.url)
        info = await nc.jetstream().consumer_info("OSSO_CASE", "slow")
        dlq = await nc.jetstream().stream_info("OSSO_DLQ")
        await nc.close()
        assert info.delivered.consumer_seq == 1, "redelivered while still being applied"
        assert len(applied) == 1 and dlq.state.messages == 0
    finally:
        await rt.stop()


async def _true(value: bool) -> bool:
    return value
