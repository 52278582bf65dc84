"""Reading a stream's messages from a given sequence as fast as one nats-py connection can carry
them, for ``osso reporting rebuild``.

nats-py turns every delivery into headers, a ``Msg``, a queue entry and a task switch: about
25 µs a message, more than the rebuild spends on the event itself. Here an ephemeral pull consumer
(no acks, in stream order) delivers to an inbox whose messages are taken from the connection's
parser before any of that (:class:`Interceptor`); the consumer is asked for a few batches ahead,
so the server never waits for a request and never sends more than a few megabytes unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DEFAULT_PREFIX, AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

#: Called with a message's headers (as nats-py gives them; None without) and body, in the
#: connection's reading: it must not wait (the rebuild keeps what it reads in memory).
Handler = Callable[[dict[str, str] | None, bytes], None]
Raw = Callable[[bytes, bytes, bytes | None], Awaitable[None]]

#: Messages a pull request asks for, and requests kept open per stream: a few megabytes unread
#: at most, far below the server's limit for a slow consumer (64 MiB by default, all streams).
BATCH = 1000
DEPTH = 3
#: Seconds a pull request waits on the server; one that expires unfilled is renewed.
EXPIRES = 5.0
#: Seconds without a message after which we look whether the last one still exists, and after
#: which the rebuild gives up (a loaded machine can pause a consumer for a while).
IDLE_END = 10.0
IDLE_GIVE_UP = 300.0

_HEADER_LINE = b"NATS/1.0"
_HEADER_START = _HEADER_LINE + b"\r\n"
#: What bytes.strip() strips (str.strip() would strip other spaces of Unicode too).
_ASCII_SPACE = " \t\n\r\x0b\x0c"
_SPACE = re.compile(r"\s")


class RebuildIncomplete(RuntimeError):
    """A stream stopped delivering before its last message: the fresh tables would miss events."""


def message_headers(block: bytes | None) -> dict[str, str] | None:
    """The headers of a message's header block (``NATS/1.0\\r\\nName: value\\r\\n...``), exactly
    as nats-py's parser reads them: the same names, values and skipped lines. The block is
    decoded once, not a line at a time (a tenth of a rebuild's replay went to this before)."""
    if not block:
        return None
    if not block.startswith(_HEADER_START):
        return _message_headers(block)
    out: dict[str, str] = {}
    # Decoded whole with "replace": CR, LF and ':' are never part of a multi-byte sequence, so each
    # value decodes as it would alone; a name with a byte past ASCII fails isascii() alike.
    for line in block.decode("utf-8", "replace").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip(_ASCII_SPACE)
        if not key.isascii() or _SPACE.search(key):
            continue
        out[key] = value.strip(_ASCII_SPACE)
    return out or None


def _message_headers(block: bytes) -> dict[str, str] | None:
    """:func:`message_headers` a line at a time, for a block that does not start as usual."""
    out: dict[str, str] = {}
    for line in block[len(_HEADER_LINE) + 2 :].split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        key = name.strip()
        if not key.isascii():
            continue
        text = key.decode("ascii")
        if _SPACE.search(text):
            continue
        out[text] = value.strip().decode("utf-8", "replace")
    return out or None


def stream_sequence(reply: bytes) -> int:
    """The stream sequence in a JetStream delivery's reply subject (``$JS.ACK.<stream>.<consumer>.
    <delivered>.<stream seq>...``, or with ``<domain>.<account hash>`` after ``ACK``): what
    ``Msg.metadata`` gives, without building its objects and timestamp for every message."""
    tokens = reply.split(b".")
    return int(tokens[5] if len(tokens) == 9 else tokens[7])


class Interceptor:
    """Takes the messages of given subscriptions (by their sid) from a connection's parser, before
    nats-py builds its objects for them; every other message goes the usual way. For a connection
    of its own."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.routes: dict[int, Raw] = {}
        # nats-py's parser calls ``nc._process_msg(sid, subject, reply, payload, headers)`` for
        # every message (nats-py 2.x); an instance attribute shadows the method for this client.
        self._original = nc._process_msg
        nc._process_msg = self._process_msg  # type: ignore[method-assign]

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        route = self.routes.get(sid)
        if route is None:
            await self._original(sid, subject, reply, data, headers)  # type: ignore[arg-type]
        else:
            await route(reply, data, headers)


async def read_stream(
    js: JetStreamContext, interceptor: Interceptor, stream: str, first: int, last: int, handle: Handler
) -> int:
    """Call ``handle(headers, body)`` for every message of ``stream`` from sequence ``first`` to
    ``last``, in order. Returns the number of messages."""
    if last < first:
        return 0
    nc = interceptor.nc
    info = await js.add_consumer(
        stream,
        ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=first,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=IDLE_GIVE_UP,
            mem_storage=True,
            num_replicas=1,
        ),
    )
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)  # the server routes the inbox to this connection
    request = json.dumps({"batch": BATCH, "expires": int(EXPIRES * 1e9)}).encode()
    next_subject = f"{DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{info.name}"
    done = asyncio.Event()
    seen = 0
    failure: BaseException | None = None
    last_seen = time.monotonic()

    async def ask() -> None:
        await nc.publish(next_subject, request, reply=inbox)

    async def on_message(reply: bytes, data: bytes, headers: bytes | None) -> None:
        nonlocal seen, last_seen, failure
        last_seen = time.monotonic()
        if done.is_set():
            return
        if not reply:  # a status: 408 or 404 when a request ended unfilled, 409 when it failed
            status = (headers or b"")[len(_HEADER_LINE) + 1 : len(_HEADER_LINE) + 4]
            if status in (b"404", b"408"):
                await ask()
                return
            failure = RebuildIncomplete(f"{stream}: the consumer answered {(headers or b'').decode()!r}")
            done.set()
            return
        seq = stream_sequence(reply)
        if seq > last:
            done.set()
            return
        seen += 1
        if seen % BATCH == 0:
            await ask()
        try:
            handle(message_headers(headers), data)
        except Exception as exc:  # raised by read_stream, not lost in nats-py's reading task
            failure = exc
            done.set()
            return
        if seq >= last:
            done.set()

    # A pull consumer's messages keep their own subjects: only the sid says they are ours.
    sid: int = sub._id
    interceptor.routes[sid] = on_message
    try:
        for _ in range(DEPTH):
            await ask()
        await _wait(js, stream, last, done, lambda: last_seen, lambda: seen)
        if failure is not None:
            raise failure
    finally:
        interceptor.routes.pop(sid, None)
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, info.name)
    return seen


async def _wait(
    js: JetStreamContext,
    stream: str,
    last: int,
    done: asyncio.Event,
    last_seen: Callable[[], float],
    seen: Callable[[], int],
) -> None:
    """Until ``done``, or until the last message is found gone (deleted or aged out: it never
    comes); give up after :data:`IDLE_GIVE_UP` seconds without a message."""
    while not done.is_set():
        try:
            await asyncio.wait_for(done.wait(), timeout=2.0)
        except TimeoutError:
            idle = time.monotonic() - last_seen()
            if idle < IDLE_END:
                continue
            try:
                await js.get_msg(stream, last)
            except NotFoundError:
                return
            if idle > IDLE_GIVE_UP:
                raise RebuildIncomplete(f"{stream}: no message for {idle:.0f} s after {seen()}") from None
