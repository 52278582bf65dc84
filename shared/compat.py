"""Work-arounds for the libraries we pin, each with the reason and how to tell when it can go.

1. FastStream 0.7.8's pull-batch loop catches ``nats.errors.TimeoutError`` around ``fetch``, but
   nats-py 2.16 raises plain ``asyncio.TimeoutError`` when a partial batch's deadline runs out. The
   exception escapes, FastStream's supervisor restarts the loop, and the messages already fetched
   for that batch are dropped unacked: they come back only after ``ack_wait``.
   ``nats.errors.TimeoutError`` subclasses ``asyncio.TimeoutError`` (the builtin in 3.11), so
   catching the builtin catches both. Remove when
   ``tests/integration/test_consumer.py::test_no_message_waits_for_ack_wait_in_a_partial_batch``
   passes without it.

2. The same loop asks the server for a batch every ``batch_timeout`` (20 ms) whether or not
   anything is there: an idle platform spent about 60 % of a core (services and nats-server
   together) answering its own empty pulls. :func:`long_poll_batches` waits for the first message
   with one long pull (``idle_poll`` seconds), then tops the batch up for at most ``batch_timeout``:
   the same batches and latency under load, one request per ``idle_poll`` when idle. Remove if
   FastStream's loop learns to long-poll (``tests/integration/test_consumer.py::
   test_an_idle_consumer_does_not_poll`` says whether it is still needed).
"""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

from faststream.nats.subscriber.usecases import stream_pull_subscriber
from nats.errors import ConnectionClosedError
from nats.js.errors import ServiceUnavailableError

#: Seconds one idle pull waits on the server (set from ``BusSettings.idle_poll``).
IDLE_POLL = 5.0


async def long_poll_batches(self: Any) -> None:
    """``BatchPullStreamSubscriber._consume_pull``, long-polling while idle."""
    assert self.subscription, "You should call `create_subscription` at first."
    batch_size: int = self.pull_sub.batch_size
    top_up: float = self.pull_sub.timeout or 0.02
    while self.running:
        try:
            messages = await self.subscription.fetch(batch=1, timeout=IDLE_POLL)
            if batch_size > 1 and self.running:
                try:
                    messages += await self.subscription.fetch(batch=batch_size - 1, timeout=top_up)
                except builtins.TimeoutError:
                    pass  # nothing more came in time: go with what we have
        except builtins.TimeoutError:
            continue  # idle: pull again
        except (ConnectionClosedError, ServiceUnavailableError):
            # Unacknowledged messages come back from the server; don't spin while it is away.
            await asyncio.sleep(0.5)
            continue
        if messages and self.running:
            await self.consume(messages)


def apply(idle_poll: float | None = None) -> None:
    global IDLE_POLL
    stream_pull_subscriber.TimeoutError = builtins.TimeoutError  # type: ignore[assignment,misc]
    stream_pull_subscriber.BatchPullStreamSubscriber._consume_pull = long_poll_batches  # type: ignore[method-assign]
    if idle_poll is not None:
        IDLE_POLL = idle_poll
