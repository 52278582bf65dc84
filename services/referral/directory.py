"""Loading a partner directory file (the demo directory, or one ops hands us)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.referral.store import PartnerRow
from shared.events import TOKEN_PATTERN
from shared.provinces import resolve_province
from shared.runtime import Runtime
from shared.vocab import ServiceCategory


class PartnerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=TOKEN_PATTERN)
    name: str = Field(min_length=1, max_length=300)
    province: str
    categories: list[ServiceCategory] = Field(min_length=1)
    active: bool = True

    @field_validator("province")
    @classmethod
    def _province(cls, value: str) -> str:
        return resolve_province(value).code


class DirectoryFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    partners: list[PartnerIn]


async def load_directory(rt: Runtime, path: Path) -> int:
    """Upsert every partner of the file in one transaction; returns how many."""
    raw = await asyncio.to_thread(path.read_bytes)
    directory = DirectoryFile.model_validate(orjson.loads(raw))
    async with rt.uow() as uow:
        for p in directory.partners:
            await uow.session.merge(
                PartnerRow(
                    id=p.id,
                    name=p.name,
                    province=p.province,
                    categories=",".join(c.value for c in p.categories),
                    active=p.active,
                )
            )
        await uow.commit()
    return len(directory.partners)
