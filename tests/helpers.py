"""Helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import nats
from nats.js import JetStreamContext

from shared.streams import ALL_STREAMS

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Call ``check`` until it returns a truthy value or stops raising AssertionError."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (AssertionError, LookupError, httpx.HTTPError) as exc:
            last = exc
        time.sleep(interval)
    if last:
        raise last
    raise AssertionError(f"condition not met within {timeout}s")


async def aeventually(check: Callable[[], Awaitable[T]], timeout: float = 10.0, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = await check()
            if result:
                return result
        except AssertionError as exc:
            last = exc
        await asyncio.sleep(interval)
    if last:
        raise last
    raise AssertionError(f"condition not met within {timeout}s")


def auth(
    platform: Any, role: str = "central_admin", province: str | None = None, partner_id: str | None = None
) -> dict[str, str]:
    """Authorization header for a development token of ``role`` on ``platform``."""
    from shared.auth import Role

    return {"Authorization": f"Bearer {platform.token(Role(role), province, partner_id)}"}


def new_case(
    province: str = "01",
    needs: tuple[str, ...] = ("legal",),
    phone: str | None = "0912345678",
    sms: bool = True,
    referral: bool = True,
    channel: str = "walk_in",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "province": province,
        "channel": channel,
        "needs": list(needs),
        "consent": {"referral": referral, "sms": sms},
    }
    if phone is not None:
        body["phone"] = phone
    return body


async def all_stream_messages(url: str) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message still stored in every OSSO stream: (subject, headers, body)."""
    nc = await nats.connect(url)
    js: JetStreamContext = nc.jetstream()
    out = []
    try:
        for spec in ALL_STREAMS:
            info = await js.stream_info(spec.name)
            if not info.state.messages:
                continue
            for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
                try:
                    m = await js.get_msg(spec.name, seq)
                except nats.js.errors.NotFoundError:
                    continue
                out.append((m.subject or "", dict(m.headers or {}), m.data or b""))
    finally:
        await nc.close()
    return out
