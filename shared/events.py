"""Versioned event contracts. Events carry pseudonymous ids and facts, never a name, phone,
ID number or address: ``extra="forbid"`` makes a stray identifying field a contract error."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.vocab import Channel, ServiceCategory

ProvinceCode = str  # two digits, post-2025 list unless the event says otherwise
PROVINCE_PATTERN = r"^\d{2}$"
#: Subject tokens must not contain '.', '*', '>' or spaces.
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class Event(BaseModel):
    """Base of every event. ``TYPE`` is the CloudEvents type; its suffix is the schema version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    TYPE: ClassVar[str]
    SOURCE: ClassVar[str]

    def subject(self) -> str:
        """The NATS subject this event is published on."""
        raise NotImplementedError

    def ce_subject(self) -> str:
        """The CloudEvents ``subject``: the pseudonymous id of the aggregate."""
        raise NotImplementedError


class CaseEvent(Event):
    SOURCE: ClassVar[str] = "/osso/intake"
    NAME: ClassVar[str]

    case_id: str = Field(pattern=TOKEN_PATTERN)
    province: ProvinceCode = Field(pattern=PROVINCE_PATTERN)

    def subject(self) -> str:
        return f"osso.case.{self.province}.{self.NAME}"

    def ce_subject(self) -> str:
        return self.case_id


class ConsentSnapshot(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    referral: bool
    sms: bool


class CaseOpened(CaseEvent):
    """A caseworker registered a case."""

    TYPE: ClassVar[str] = "vn.osso.case.opened.v1"
    NAME: ClassVar[str] = "opened"

    province_scheme: str = "vn-2025"
    channel: Channel
    needs: list[ServiceCategory]
    consent: ConsentSnapshot
    opened_at: AwareDatetime


class ReferralEvent(Event):
    SOURCE: ClassVar[str] = "/osso/referral"
    NAME: ClassVar[str]

    referral_id: str = Field(pattern=TOKEN_PATTERN)
    case_id: str = Field(pattern=TOKEN_PATTERN)
    partner_id: str = Field(pattern=TOKEN_PATTERN)
    province: ProvinceCode = Field(pattern=PROVINCE_PATTERN)
    category: ServiceCategory

    def subject(self) -> str:
        # The partner's own subject, so NATS permissions can scope who hears what.
        return f"osso.referral.{self.partner_id}.{self.NAME}"

    def ce_subject(self) -> str:
        return self.referral_id


class ReferralRequested(ReferralEvent):
    """A need was matched to a partner, who is asked to take it."""

    TYPE: ClassVar[str] = "vn.osso.referral.requested.v1"
    NAME: ClassVar[str] = "requested"

    requested_at: AwareDatetime


class NeedUnmatched(Event):
    """No partner in the directory could take a need."""

    TYPE: ClassVar[str] = "vn.osso.referral.unmatched.v1"
    SOURCE: ClassVar[str] = "/osso/referral"

    case_id: str = Field(pattern=TOKEN_PATTERN)
    province: ProvinceCode = Field(pattern=PROVINCE_PATTERN)
    category: ServiceCategory
    reason: str = Field(max_length=200)
    at: AwareDatetime

    def subject(self) -> str:
        return f"osso.referral.unmatched.{self.province}"

    def ce_subject(self) -> str:
        return self.case_id


class NotificationEvent(Event):
    SOURCE: ClassVar[str] = "/osso/notification"
    NAME: ClassVar[str]

    message_id: str = Field(pattern=TOKEN_PATTERN)
    case_id: str = Field(pattern=TOKEN_PATTERN)
    province: ProvinceCode = Field(pattern=PROVINCE_PATTERN)

    def subject(self) -> str:
        return f"osso.notification.{self.province}.{self.NAME}"

    def ce_subject(self) -> str:
        return self.message_id


class FollowUpScheduled(NotificationEvent):
    TYPE: ClassVar[str] = "vn.osso.notification.scheduled.v1"
    NAME: ClassVar[str] = "scheduled"

    referral_id: str | None = None
    template: str = Field(pattern=TOKEN_PATTERN)
    due_at: AwareDatetime


class MessageSent(NotificationEvent):
    TYPE: ClassVar[str] = "vn.osso.notification.sent.v1"
    NAME: ClassVar[str] = "sent"

    segments: int = Field(ge=1)
    sent_at: AwareDatetime


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls for cls in (CaseOpened, ReferralRequested, NeedUnmatched, FollowUpScheduled, MessageSent)
}


def event_type(name: str) -> type[Event]:
    """The model registered for a CloudEvents type; ``KeyError`` when unknown."""
    return EVENT_TYPES[name]


def utc_time(dt: datetime) -> str:
    return dt.isoformat()
