"""Reporting's tables: aggregates only, never a case id or any text about a woman."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Column, Date, Integer, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.domain import Contribution
from shared.db import increment

metadata = MetaData()

counts = Table(
    "counts",
    metadata,
    Column("province", String(2), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("category", String(32), primary_key=True),
    Column("metric", String(40), primary_key=True),
    Column("value", Integer, nullable=False),
)


async def add(session: AsyncSession, contribution: Contribution) -> None:
    keys: dict[str, str | date] = {
        "province": contribution.province,
        "day": contribution.day,
        "category": contribution.category,
        "metric": contribution.metric,
    }
    await increment(session, counts, keys, "value", contribution.delta)
