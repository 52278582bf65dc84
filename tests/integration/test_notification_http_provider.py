"""Issue 6: the ``http`` provider against a real local HTTP gateway that fails, hangs or is slow:
retries with backoff, circuit opening and closing, rate limit, and never a double send."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.notification.providers import (
    CircuitBreaker,
    CircuitOpen,
    HttpProvider,
    ProviderRejected,
    ProviderUnavailable,
    RateLimiter,
)
from tests.integration.notification_fakes import API_KEY, Gateway, gateway

TO = "+84912345678"


def provider(gw: Gateway, **kw: object) -> HttpProvider:
    options: dict[str, object] = {"timeout": 0.5, "attempts": 3, "backoff": 0.01}
    options.update(kw)
    return HttpProvider(gw.url, API_KEY, **options)  # type: ignore[arg-type]


async def send(p: HttpProvider, message_id: str = "m1"):  # type: ignore[no-untyped-def]
    return await p.send(message_id=message_id, to=TO, sender="TB-HoTro", text="Chào chị")


async def test_sends_json_with_the_api_key_and_idempotency_key() -> None:
    async with gateway() as gw:
        p = provider(gw)
        result = await send(p, "m-ok")
        await p.close()
    assert result.provider_message_id == "gw-m-ok" and not result.duplicate
    assert gw.bodies == [{"message_id": "m-ok", "to": TO, "sender": "TB-HoTro", "text": "Chào chị"}]


async def test_retries_server_errors_and_busy_answers_with_backoff() -> None:
    async with gateway(script=["fail", "busy"]) as gw:
        p = provider(gw)
        result = await send(p)
        await p.close()
    assert result.provider_message_id == "gw-m1"
    assert gw.requests == 3 and gw.accepted["m1"] == 1


async def test_hanging_gateway_times_out_and_gives_up_after_the_attempts() -> None:
    async with gateway(default="hang", hang_seconds=2.0) as gw:
        p = provider(gw, timeout=0.2, attempts=2)
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable) as err:
            await send(p)
        elapsed = time.monotonic() - started
        await p.close()
    assert err.value.reason == "timeout" and gw.requests == 2
    assert elapsed < 1.8  # each attempt was cut at the timeout, not at the gateway's 2 s


async def test_slow_gateway_within_the_timeout_is_fine() -> None:
    async with gateway(default="slow", slow_seconds=0.2) as gw:
        p = provider(gw, timeout=2.0)
        await send(p)
        await p.close()
    assert gw.requests == 1 and gw.accepted["m1"] == 1


async def test_accepted_but_answer_lost_is_not_sent_twice() -> None:
    """The gateway accepted the message but its answer never came: the retry carries the same
    idempotency key, the gateway says 409, and the message was handed over exactly once."""
    async with gateway(script=["accept_then_hang"], hang_seconds=2.0) as gw:
        p = provider(gw, timeout=0.3)
        result = await send(p, "m-lost")
        await p.close()
    assert result.duplicate and result.provider_message_id == "gw-m-lost"
    assert gw.requests == 2 and gw.accepted["m-lost"] == 1


async def test_refused_message_is_not_retried() -> None:
    async with gateway(default="reject") as gw:
        p = provider(gw)
        with pytest.raises(ProviderRejected, match="http_400"):
            await send(p)
        await p.close()
    assert gw.requests == 1


async def test_wrong_api_key_is_a_rejection() -> None:
    async with gateway() as gw:
        p = HttpProvider(gw.url, "wrong", timeout=0.5, attempts=3, backoff=0.01)
        with pytest.raises(ProviderRejected, match="http_401"):
            await send(p)
        await p.close()


async def test_circuit_opens_after_consecutive_failures_and_closes_after_a_good_trial() -> None:
    async with gateway(default="fail") as gw:
        breaker = CircuitBreaker(failures=2, reset=0.4)
        p = provider(gw, attempts=1, breaker=breaker)
        for i in range(2):
            with pytest.raises(ProviderUnavailable):
                await send(p, f"m{i}")
        assert breaker.state == "open" and gw.requests == 2
        # Open: the gateway is not even called.
        with pytest.raises(CircuitOpen) as err:
            await send(p, "m2")
        assert gw.requests == 2 and 0 < (err.value.retry_after or 0) <= 0.4
        # After the reset time, one trial; it fails: open again at once.
        await asyncio.sleep(0.45)
        with pytest.raises(ProviderUnavailable):
            await send(p, "m3")
        assert breaker.state == "open" and gw.requests == 3
        # The gateway recovers; after the reset time the trial succeeds and the circuit closes.
        gw.default = "ok"
        await asyncio.sleep(0.45)
        await send(p, "m4")
        assert breaker.state == "closed"
        await send(p, "m5")
        await p.close()
    assert gw.requests == 5 and set(gw.accepted) == {"m4", "m5"}


async def test_half_open_lets_one_trial_through() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=1, reset=10.0, clock=lambda: now[0])
    breaker.record_failure()
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    now[0] = 10.0
    breaker.before_call()  # the trial
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # a second caller while the trial is out
    breaker.record_success()
    breaker.before_call()
    assert breaker.state == "closed"


async def test_rate_limit_per_provider() -> None:
    async with gateway() as gw:
        p = provider(gw, limiter=RateLimiter(rate=20, burst=1))
        started = time.monotonic()
        await asyncio.gather(*(send(p, f"m{i}") for i in range(6)))
        elapsed = time.monotonic() - started
        await p.close()
    assert gw.requests == 6
    assert elapsed >= 0.2  # 6 messages at 20/s with no burst: at least 5 gaps of 50 ms
