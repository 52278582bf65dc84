"""Intake's tables. Identifying fields are stored only as ciphertext plus a keyed hash for lookup."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.db import UtcDateTime


class IntakeModel(SQLModel, registry=registry()):
    """Base of intake's tables: its own metadata, so no other service's tables mix in."""


class CaseRow(IntakeModel, table=True):
    __tablename__ = "cases"

    id: str = Field(primary_key=True, max_length=64)
    province: str = Field(index=True, max_length=2)
    province_scheme: str = Field(default="vn-2025", max_length=16)
    channel: str = Field(max_length=16)
    needs: str = Field(max_length=200)  # comma-separated service categories
    consent_referral: bool
    consent_sms: bool
    phone_enc: str | None = Field(default=None)
    phone_bidx: str | None = Field(default=None, index=True, max_length=64)
    status: str = Field(default="open", max_length=16)
    opened_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


class AuditRow(IntakeModel, table=True):
    """Who read or changed identifying data, when and why. Append-only: no API edits it."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False, index=True))
    actor: str = Field(max_length=100)
    action: str = Field(max_length=32)  # read | create | update | erase
    case_id: str = Field(index=True, max_length=64)
    fields: str = Field(max_length=200)
    purpose: str = Field(max_length=100)


metadata = IntakeModel.metadata
