"""Build a service's runtime in the test process, against a real nats-server and SQLite file."""

from __future__ import annotations

from pathlib import Path

from faststream.nats import NatsRouter
from sqlalchemy import MetaData, func, select

from services.reporting import handlers
from services.reporting.settings import ReportingSettings
from services.reporting.store import counts, metadata
from shared.consumer import Apply
from shared.runtime import Runtime
from shared.settings import BusSettings, PlatformSettings, ServiceSettings
from shared.streams import CASE


def reporting_runtime(tmp: Path, nats_url: str, **bus: float | int) -> Runtime:
    settings = ReportingSettings(
        database_url=f"sqlite+aiosqlite:///{tmp / 'reporting.db'}",
        bus=BusSettings(nats_url=nats_url, **bus),  # type: ignore[arg-type]
        platform=PlatformSettings(data_dir=tmp),
    )
    rt = Runtime("reporting", settings, metadata)
    rt.include(handlers.build_router(rt))
    return rt


async def metric_total(rt: Runtime, metric: str) -> int:
    async with rt.sessions() as session:
        value = (
            await session.execute(
                select(func.sum(counts.c.value)).where(
                    counts.c.metric == metric, counts.c.period.like("M%"), counts.c.level == "all"
                )
            )
        ).scalar()
    return int(value or 0)


def bare_runtime(tmp: Path, nats_url: str, durable: str, apply: Apply, **bus: float | int) -> Runtime:
    """A runtime with one consumer of case events and no tables of its own (plumbing tests)."""
    settings = ServiceSettings(
        database_url=f"sqlite+aiosqlite:///{tmp / f'{durable}.db'}",
        bus=BusSettings(nats_url=nats_url, **bus),  # type: ignore[arg-type]
        platform=PlatformSettings(data_dir=tmp),
    )
    rt = Runtime(durable, settings, MetaData())
    router = NatsRouter()
    rt.subscribe(router, "osso.case.>", rt.event_consumer(durable, CASE.name, apply), "plumbing test")
    rt.include(router)
    return rt
