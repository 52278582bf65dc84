"""SMS provider adapters behind one interface.

Every send carries our message id as the provider's idempotency key: a message re-sent after a
crash (the provider accepted it but we never recorded that) is recognised and not sent twice.

- ``file`` (default, development): appends each message as a JSON line a person can read, with a
  masked number; it remembers the ids in its file, so it is idempotent across restarts too.
- ``http``: a generic SMS gateway: JSON POST with an API key, a timeout per attempt, retries with
  exponential backoff, a circuit breaker and a rate limit per provider.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

import httpx
import orjson

from shared.logs import get_logger
from shared.phones import mask

log = get_logger(__name__)


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    #: True when the provider already had this message id (a re-send after a crash): not sent again.
    duplicate: bool = False


class ProviderUnavailable(Exception):
    """The provider could not take the message now (timeouts, 5xx, 429): try again later."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class CircuitOpen(ProviderUnavailable):
    """The circuit breaker is open: the provider is not called until ``retry_after`` seconds pass."""


class ProviderRejected(Exception):
    """The provider refused this message for good (e.g. 400 invalid number): do not retry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SmsProvider(Protocol):
    name: str

    async def send(self, *, message_id: str, to: str, sender: str, text: str) -> SendResult: ...

    async def close(self) -> None: ...


class FileProvider:
    """Development provider: one JSON line per message in a file a person can read.

    The number is masked: the file is a stand-in for the gateway, not a place to keep her phone."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._sent: set[str] = set()
        self._read_up_to = 0  # bytes of the file whose ids are in _sent
        self._written = 0  # bytes this object appended since then
        self._file: IO[bytes] | None = None

    def _catch_up(self) -> None:
        """Learn the ids appended since the last look (by a replica or a crashed run)."""
        if self._file is not None:
            size = os.fstat(self._file.fileno()).st_size
            if size == self._read_up_to + self._written:
                self._read_up_to, self._written = size, 0  # only our own lines: nothing to learn
                return
        elif not self.path.exists():
            return
        self._written = 0
        with self.path.open("rb") as f:
            f.seek(self._read_up_to)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # only whole lines; a torn last line was never handed over
        for line in chunk[:end].splitlines():
            try:
                self._sent.add(orjson.loads(line)["message_id"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
        self._read_up_to += end

    async def send(self, *, message_id: str, to: str, sender: str, text: str) -> SendResult:
        self._catch_up()
        if message_id in self._sent:
            return SendResult(provider_message_id=f"file:{message_id}", duplicate=True)
        line = orjson.dumps(
            {
                "message_id": message_id,
                "to": _mask(to),
                "sender": sender,
                "text": text,
                "at": datetime.now(UTC).isoformat(),
            }
        )
        if self._file is None:
            self._file = self.path.open("ab", buffering=0)
        # One write() of the whole line: appends from several processes do not interleave.
        self._file.write(line + b"\n")
        self._written += len(line) + 1
        self._sent.add(message_id)
        return SendResult(provider_message_id=f"file:{message_id}")

    async def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _mask(e164: str) -> str:
    """``shared.phones.mask`` without parsing for the common Vietnamese case (it is on the hot path)."""
    if e164.startswith("+84") and e164[1:].isdigit() and len(e164) >= 8:
        return f"+84•••••{e164[-3:]}"
    return mask(e164)


class CircuitBreaker:
    """Closed -> open after ``failures`` consecutive failures -> half-open after ``reset`` seconds
    (one trial call) -> closed on success, open again on failure."""

    def __init__(self, failures: int, reset: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = failures
        self.reset = reset
        self.clock = clock
        self.state = "closed"
        self.consecutive_failures = 0
        self.opened_at = 0.0
        self._trial_in_flight = False

    def before_call(self) -> None:
        """Raise :class:`CircuitOpen` unless a call may go through now."""
        if self.state == "closed":
            return
        waited = self.clock() - self.opened_at
        if self.state == "open" and waited >= self.reset:
            self.state = "half_open"
        if self.state == "half_open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return
        raise CircuitOpen("circuit_open", retry_after=max(self.reset - waited, 0.1))

    def record_success(self) -> None:
        if self.state != "closed":
            log.info("circuit_closed")
        self.state = "closed"
        self.consecutive_failures = 0
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        self._trial_in_flight = False
        if self.state == "half_open" or self.consecutive_failures >= self.threshold:
            if self.state != "open":
                log.warning("circuit_opened", failures=self.consecutive_failures)
            self.state = "open"
            self.opened_at = self.clock()


class RateLimiter:
    """A token bucket: at most ``rate`` calls a second on average, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.capacity = burst if burst is not None else max(rate, 1.0)
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self.rate <= 0:
            return
        async with self._lock:
            while True:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


_TRANSIENT_STATUS = frozenset({408, 425, 429})


class HttpProvider:
    """A generic SMS gateway: ``POST <url>`` with ``{"message_id", "to", "sender", "text"}``,
    ``Authorization: Bearer <api key>`` and ``Idempotency-Key: <message id>``; a 2xx answer
    ``{"id": "<provider message id>"}`` means accepted, 409 means it already had this message."""

    name = "http"

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 5.0,
        attempts: int = 3,
        backoff: float = 0.2,
        breaker: CircuitBreaker | None = None,
        limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not url:
            raise ValueError("the http provider needs OSSO_NOTIFICATION_HTTP_URL")
        self.url = url
        self.attempts = attempts
        self.backoff = backoff
        self.breaker = breaker or CircuitBreaker(5, 30.0)
        self.limiter = limiter or RateLimiter(0)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            headers={"Authorization": f"Bearer {api_key}"},
            transport=transport,
        )

    async def send(self, *, message_id: str, to: str, sender: str, text: str) -> SendResult:
        self.breaker.before_call()
        reason = "unknown"
        retry_after: float | None = None
        for attempt in range(self.attempts):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                await asyncio.sleep(delay + random.uniform(0, delay / 2))
            await self.limiter.acquire()
            try:
                r = await self._client.post(
                    self.url,
                    json={"message_id": message_id, "to": to, "sender": sender, "text": text},
                    headers={"Idempotency-Key": message_id},
                )
            except httpx.TimeoutException:
                reason = "timeout"
                continue
            except httpx.TransportError:
                reason = "connection_error"
                continue
            if 200 <= r.status_code < 300 or r.status_code == 409:
                self.breaker.record_success()
                return SendResult(self._provider_id(r, message_id), duplicate=r.status_code == 409)
            if r.status_code in _TRANSIENT_STATUS or r.status_code >= 500:
                reason = f"http_{r.status_code}"
                retry_after = _retry_after(r)
                continue
            # A 4xx other than the transient ones: the gateway works, this message is refused.
            self.breaker.record_success()
            raise ProviderRejected(f"http_{r.status_code}")
        self.breaker.record_failure()
        raise ProviderUnavailable(reason, retry_after=retry_after)

    @staticmethod
    def _provider_id(r: httpx.Response, message_id: str) -> str:
        try:
            body = r.json()
        except ValueError:
            return message_id
        value = body.get("id") if isinstance(body, dict) else None
        return str(value)[:128] if value else message_id

    async def close(self) -> None:
        await self._client.aclose()


def _retry_after(r: httpx.Response) -> float | None:
    try:
        return min(float(r.headers.get("retry-after", "")), 3600.0)
    except ValueError:
        return None
