"""Work-arounds for known faults in the libraries we pin, each with the reason and how to tell
when it can go.

FastStream 0.7.8's pull-batch loop catches ``nats.errors.TimeoutError`` around ``fetch``, but
nats-py 2.16 raises plain ``asyncio.TimeoutError`` when a partial batch's deadline runs out. The
exception escapes, FastStream's supervisor restarts the loop, and the messages already fetched
for that batch are dropped unacked: they come back only after ``ack_wait`` (30 s), which broke
latency and made tests flaky. ``nats.errors.TimeoutError`` subclasses ``asyncio.TimeoutError``
(the builtin in 3.11), so catching the builtin catches both.
Remove when tests/integration/test_pull_batches.py passes without this module.
"""

from __future__ import annotations

import builtins

from faststream.nats.subscriber.usecases import stream_pull_subscriber


def apply() -> None:
    stream_pull_subscriber.TimeoutError = builtins.TimeoutError  # type: ignore[assignment,misc]
