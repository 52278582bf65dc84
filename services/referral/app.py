"""Builds the referral process: wiring only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import FastAPI

from services.referral import admin_api, api, handlers
from services.referral.intake_client import IntakeDetails
from services.referral.referrals import Deadlines, sweep_overdue
from services.referral.seed import load_directory
from services.referral.settings import ReferralSettings
from services.referral.store import metadata
from shared.logs import get_logger
from shared.runtime import Runtime, create_http_app

log = get_logger(__name__)


class OverdueSweeper:
    """Every ``interval`` seconds, mark late referrals overdue and re-route where allowed."""

    def __init__(self, rt: Runtime, settings: ReferralSettings, clock: Callable[[], datetime]) -> None:
        self.rt = rt
        self.settings = settings
        self.deadlines = Deadlines(settings)
        self.clock = clock

    async def sweep(self, now: datetime | None = None) -> int:
        async with self.rt.uow() as uow:
            events = await sweep_overdue(uow, self.settings, self.deadlines, now or self.clock())
            await uow.commit()
        return len(events)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.overdue_interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("overdue_sweep_failed", error=type(exc).__name__, detail=str(exc)[:200])


def create_app(
    settings: ReferralSettings | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> FastAPI:
    settings = settings or ReferralSettings()
    rt = Runtime("referral", settings, metadata)
    if settings.seed_file:
        seed = settings.seed_file
        rt.add_startup(lambda: load_directory(rt, seed))
    rt.include(handlers.build_router(rt, settings))
    intake = IntakeDetails(settings.intake_url, rt.service_token(), settings.intake_timeout)
    sweeper = OverdueSweeper(rt, settings, clock)
    if settings.overdue_interval > 0:
        rt.add_background(sweeper.run)
    app = create_http_app(
        rt, [api.build_router(rt, settings, intake), admin_api.build_router(rt)], title="OSSO referral"
    )
    app.state.sweeper = sweeper
    app.state.intake = intake
    return app
