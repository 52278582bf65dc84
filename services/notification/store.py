"""Notification's tables: what it knows of each case's consent, and the scheduled messages.

No phone number is stored here: it is read from intake at send time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from services.notification.domain import ContactProfile, FollowUp
from shared.db import UtcDateTime


class NotificationModel(SQLModel, registry=registry()):
    """Base of notification's tables: its own metadata."""


class ContactProfileRow(NotificationModel, table=True):
    __tablename__ = "contact_profiles"

    case_id: str = Field(primary_key=True, max_length=64)
    province: str = Field(max_length=2)
    sms_consent: bool
    language: str = Field(default="vi", max_length=8)

    def to_domain(self) -> ContactProfile:
        return ContactProfile(self.case_id, self.province, self.sms_consent, self.language)


class FollowUpRow(NotificationModel, table=True):
    __tablename__ = "follow_ups"

    id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(index=True, max_length=64)
    province: str = Field(max_length=2)
    referral_id: str | None = Field(default=None, max_length=64)
    template: str = Field(max_length=64)
    status: str = Field(default="scheduled", index=True, max_length=16)
    due_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False, index=True))
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    segments: int | None = None
    last_error: str | None = Field(default=None, max_length=300)

    @classmethod
    def from_domain(cls, f: FollowUp) -> FollowUpRow:
        return cls(
            id=f.id,
            case_id=f.case_id,
            province=f.province,
            referral_id=f.referral_id,
            template=f.template,
            status=f.status,
            due_at=f.due_at,
        )


metadata = NotificationModel.metadata
