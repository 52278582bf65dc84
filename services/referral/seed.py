"""Loading a partner directory file at start (the demo directory, or one ops hands us)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from services.referral import hsds
from services.referral.admin_api import upsert
from services.referral.directory import Directory, Organization, Service, ServiceArea, slug
from services.referral.store import PartnerOrgRow
from shared.runtime import Runtime


def from_simple_list(doc: dict[str, Any]) -> Directory:
    """The walking skeleton's ``{"partners": [{id, name, province, categories, active}]}``: one
    service per category, serving the whole province."""
    orgs = []
    for p in doc["partners"]:
        area = ServiceArea(province=p["province"])
        orgs.append(
            Organization(
                id=p["id"],
                name=p["name"],
                status="active" if p.get("active", True) else "inactive",
                services=[
                    Service(
                        id=f"{p['id']}-{slug(c)}",
                        name=f"{p['name']} ({c})",
                        category=c,
                        languages=["vi", "en"],
                        areas=[area],
                    )
                    for c in p["categories"]
                ],
            )
        )
    return Directory(organizations=orgs)


def read_directory(raw: bytes) -> Directory:
    doc = orjson.loads(raw)
    if isinstance(doc, dict) and "partners" in doc:
        return from_simple_list(doc)
    return hsds.parse(doc)


async def load_directory(rt: Runtime, path: Path) -> int:
    """Upsert every partner of the file in one transaction (a partner whose entry did not change
    is left alone, so a restart emits nothing); returns how many changed."""
    directory = read_directory(await asyncio.to_thread(path.read_bytes))
    now = datetime.now(UTC)
    changed = 0
    async with rt.uow() as uow:
        for org in directory.organizations:
            row = await uow.session.get(PartnerOrgRow, org.id)
            if row is not None and row.to_domain() == org:
                continue
            await upsert(uow, org, now)
            changed += 1
        await uow.commit()
    return changed
