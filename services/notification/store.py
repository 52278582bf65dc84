"""Notification's tables: what it knows of each case's consent and preferences, the scheduled
messages, and the webhook calls already handled.

No phone number is stored here: it is read from intake at send time. A keyed hash of it (HMAC,
key known only to notification) is kept per sent message so that a reply can be matched to her
case; it is dropped when the case is erased."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index
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
    safe_hours_start: str | None = Field(default=None, max_length=5)
    safe_hours_end: str | None = Field(default=None, max_length=5)
    do_not_contact: bool = False
    sms_channel: bool = True
    closed: bool = False
    #: CaseOpened was seen: follow-ups for a case not opened yet wait (they are retried).
    opened: bool = False
    #: A tombstone: an erased case is never contacted again, even if an old event arrives late.
    erased: bool = False

    def to_domain(self) -> ContactProfile:
        return ContactProfile(
            case_id=self.case_id,
            province=self.province,
            sms_consent=self.sms_consent,
            language=self.language,
            safe_hours_start=self.safe_hours_start,
            safe_hours_end=self.safe_hours_end,
            do_not_contact=self.do_not_contact,
            sms_channel=self.sms_channel,
            closed=self.closed,
            erased=self.erased,
        )


class FollowUpRow(NotificationModel, table=True):
    __tablename__ = "follow_ups"
    __table_args__ = (Index("ix_follow_ups_due", "status", "due_at"),)

    id: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(index=True, max_length=64)
    province: str = Field(max_length=2)
    referral_id: str | None = Field(default=None, index=True, max_length=64)
    plan: str | None = Field(default=None, max_length=64)
    template: str = Field(max_length=64)
    #: scheduled -> sending (claimed, handed to the provider) -> sent -> delivered | failed; or cancelled.
    status: str = Field(default="scheduled", max_length=16)
    due_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    appointment_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    #: Segments and encoding of the text as sent, for cost reporting.
    segments: int | None = None
    encoding: str | None = Field(default=None, max_length=8)
    provider_message_id: str | None = Field(default=None, index=True, max_length=128)
    #: HMAC-SHA256 of her E.164 number at send time (never the number).
    phone_hash: str | None = Field(default=None, index=True, max_length=64)
    #: Code of why it was cancelled or failed; ``last_error`` is the latest transient error's type.
    reason: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, max_length=300)

    @classmethod
    def from_domain(cls, f: FollowUp) -> FollowUpRow:
        return cls(
            id=f.id,
            case_id=f.case_id,
            province=f.province,
            referral_id=f.referral_id,
            plan=f.plan,
            template=f.template,
            status=f.status,
            due_at=f.due_at,
            appointment_at=f.appointment_at,
        )

    def to_domain(self) -> FollowUp:
        return FollowUp(
            id=self.id,
            case_id=self.case_id,
            province=self.province,
            referral_id=self.referral_id,
            template=self.template,
            due_at=self.due_at,
            plan=self.plan,
            appointment_at=self.appointment_at,
            status=self.status,
            reason=self.reason,
        )


class WebhookCallRow(NotificationModel, table=True):
    """A receipt or inbound message already handled: the provider may post it again."""

    __tablename__ = "webhook_calls"

    kind: str = Field(primary_key=True, max_length=16)  # "receipt" | "inbound"
    external_id: str = Field(primary_key=True, max_length=128)
    received_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    outcome: str = Field(max_length=32)


metadata = NotificationModel.metadata
