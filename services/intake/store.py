"""Intake's tables and queries. Identifying fields are stored only as ciphertext under the case's
own key plus keyed hashes for look-up; categories are stored in clear for scoping and counting.

The schema is created by Alembic (``services/intake/migrations``), not ``create_all``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import JSON, Column, Index, Select, Table, and_, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.db import UtcDateTime, plumbing_tables


class IntakeModel(SQLModel, registry=registry()):
    """Base of intake's tables: its own metadata, so no other service's tables mix in."""


class CaseRow(IntakeModel, table=True):
    __tablename__ = "cases"

    id: str = Field(primary_key=True, max_length=64)
    province: str = Field(index=True, max_length=2)
    province_scheme: str = Field(default="vn-2025", max_length=16)
    channel: str = Field(max_length=16)
    needs: str = Field(max_length=200)  # comma-separated service categories (the plain list)
    priorities: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    consent_referral: bool
    consent_sms: bool
    consent_zalo: bool = Field(default=False)
    consent_statistics: bool = Field(default=True)
    referral_categories: str | None = Field(default=None, max_length=200)
    profile: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    story: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    children: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    contact: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    #: Her identity (name, birth date, phones, CCCD, address, notes, children's names), sealed
    #: under the case's own key (``case_keys``); None once erased.
    identity_enc: str | None = Field(default=None)
    has_phone: bool = Field(default=False)
    status: str = Field(default="open", max_length=16, index=True)
    close_reason: str | None = Field(default=None, max_length=32)
    opened_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False, index=True))
    updated_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    erased_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))


class CaseKeyRow(IntakeModel, table=True):
    """A case's data key, wrapped by the master key. Deleting it shreds her data for good."""

    __tablename__ = "case_keys"

    case_id: str = Field(primary_key=True, max_length=64)
    wrapped_key: str = Field(max_length=400)
    created_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


class CaseLookupRow(IntakeModel, table=True):
    """Keyed hashes of her phone, CCCD and folded name: search and duplicate checks on ciphertext."""

    __tablename__ = "case_lookups"
    __table_args__ = (Index("ix_case_lookups_kind_digest", "kind", "digest", "province"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True, max_length=64)
    province: str = Field(max_length=2)
    kind: str = Field(max_length=16)
    digest: str = Field(max_length=64)


class ConsentRecordRow(IntakeModel, table=True):
    """Every consent given or withdrawn: for which purpose, who recorded it and when."""

    __tablename__ = "consent_records"

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True, max_length=64)
    purpose: str = Field(max_length=16)
    granted: bool
    referral_categories: str | None = Field(default=None, max_length=200)
    recorded_by: str = Field(max_length=32)  # role code or "sms_opt_out"
    actor: str = Field(max_length=100)  # token subject, e.g. caseworker:cw-01
    at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


class SessionRow(IntakeModel, table=True):
    __tablename__ = "counselling_sessions"

    id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(index=True, max_length=64)
    province: str = Field(max_length=2)
    held_on: date
    channel: str = Field(max_length=16)
    topics: str = Field(max_length=200)
    duration_minutes: int
    counsellor: str = Field(max_length=64)  # staff code, never her name
    notes_enc: str | None = Field(default=None)  # sealed under the case key
    recorded_by: str = Field(max_length=100)
    recorded_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


class ActivityRow(IntakeModel, table=True):
    __tablename__ = "activities"

    id: str = Field(primary_key=True, max_length=64)
    province: str = Field(index=True, max_length=2)
    kind: str = Field(max_length=16)
    held_on: date = Field(index=True)
    topics: str = Field(max_length=200)
    title: str | None = Field(default=None, max_length=200)
    participants: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    recorded_by: str = Field(max_length=100)
    recorded_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


class AuditRow(IntakeModel, table=True):
    """Who read or changed identifying data, when and why. Append-only: no API edits it, and
    database triggers (see the migrations) refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False, index=True))
    actor: str = Field(max_length=100)
    action: str = Field(max_length=32)  # read | search | create | update | erase
    case_id: str = Field(index=True, max_length=64)
    fields: str = Field(max_length=200)
    purpose: str = Field(max_length=100)


metadata = IntakeModel.metadata
plumbing = plumbing_tables(metadata)


def table(model: type[IntakeModel]) -> Table:
    """The Core table of a model (typed columns for queries)."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


lookups = table(CaseLookupRow)
cases = table(CaseRow)
sessions_t = table(SessionRow)
activities_t = table(ActivityRow)
audit_t = table(AuditRow)
consents_t = table(ConsentRecordRow)
keys_t = table(CaseKeyRow)


# -- queries ---------------------------------------------------------------------------------------------


async def replace_lookups(
    session: AsyncSession, case_id: str, province: str, digests: list[tuple[str, str]]
) -> None:
    """Make ``(kind, digest)`` pairs the case's only lookups."""
    await session.execute(delete(lookups).where(lookups.c.case_id == case_id))
    rows = [
        {"case_id": case_id, "province": province, "kind": kind, "digest": digest}
        for kind, digest in dict.fromkeys(digests)
    ]
    if rows:  # one executemany, not a statement per key: registration is write-bound
        await session.execute(insert(lookups), rows)


def _any_pair(pairs: list[tuple[str, str]]) -> Any:
    """Lookups matching any ``(kind, digest)``: one OR term per kind, each served by the
    (kind, digest, province) index."""
    by_kind: dict[str, list[str]] = {}
    for kind, digest in pairs:
        by_kind.setdefault(kind, []).append(digest)
    return or_(*(and_(lookups.c.kind == kind, lookups.c.digest.in_(ds)) for kind, ds in by_kind.items()))


async def matching_cases(
    session: AsyncSession, pairs: list[tuple[str, str]], provinces: list[str] | None
) -> dict[str, set[str]]:
    """Case ids whose lookups match any ``(kind, digest)``, with the kinds that matched."""
    if not pairs:
        return {}
    q = select(lookups.c.case_id, lookups.c.kind).where(_any_pair(pairs))
    if provinces is not None:
        q = q.where(lookups.c.province.in_(provinces))
    found: dict[str, set[str]] = {}
    for case_id, kind in (await session.execute(q)).all():
        found.setdefault(case_id, set()).add(kind)
    return found


async def lookup_holders(
    session: AsyncSession, pairs: list[tuple[str, str]]
) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """For each ``(kind, digest)``, the ``(case id, province)`` of the cases that have it, in every
    province (the caller filters by what each requester may see): one query for a whole batch of
    registrations."""
    holders: dict[tuple[str, str], list[tuple[str, str]]] = {}
    if not pairs:
        return holders
    q = select(lookups.c.case_id, lookups.c.kind, lookups.c.digest, lookups.c.province).where(
        _any_pair(pairs)
    )
    for case_id, kind, digest, province in (await session.execute(q)).all():
        holders.setdefault((kind, digest), []).append((case_id, province))
    return holders


async def cases_with_all_tokens(
    session: AsyncSession, digests: list[str], provinces: list[str] | None
) -> Select[Any] | None:
    """A query of the case ids whose folded name has every token (None: no case can match),
    driven by the rarest token so that a common word ("thi") costs little."""
    if not digests:
        return None
    counts_q = (
        select(lookups.c.digest, func.count())
        .where(lookups.c.kind == "name_token", lookups.c.digest.in_(digests))
        .group_by(lookups.c.digest)
    )
    counts: dict[str, int] = {digest: n for digest, n in (await session.execute(counts_q)).all()}
    if len(counts) < len(set(digests)):
        return None  # some word matches nobody
    ordered = sorted(counts, key=lambda d: counts[d])
    q = select(lookups.c.case_id).where(lookups.c.kind == "name_token", lookups.c.digest == ordered[0])
    if provinces is not None:
        q = q.where(lookups.c.province.in_(provinces))
    for digest in ordered[1:]:
        other = select(lookups.c.case_id).where(lookups.c.kind == "name_token", lookups.c.digest == digest)
        q = q.where(lookups.c.case_id.in_(other))
    return q
