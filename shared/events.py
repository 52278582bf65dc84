"""Versioned event contracts. Events carry pseudonymous ids, codes and counts, never a name, phone,
ID number, address or free text: ``extra="forbid"`` makes a stray field a contract error, and
reasons and outcomes are short codes, not prose.

Subjects name the aggregate, the place and the partner so that NATS permissions can scope who
hears what: ``osso.case.<province>.<event>``, ``osso.activity.<province>.<event>``,
``osso.referral.<partner_id>.<event>``, ``osso.partner.<partner_id>.<event>``,
``osso.notification.<province>.<event>``.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.vocab import Channel, ServiceCategory

ProvinceCode = str  # two digits, post-2025 list unless the event says otherwise
PROVINCE_PATTERN = r"^\d{2}$"
#: Subject tokens and codes: no '.', '*', '>' or spaces.
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
CODE_PATTERN = r"^[a-z0-9_]{1,64}$"
HHMM_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(Contract):
    """Base of every event. ``TYPE`` is the CloudEvents type; its suffix is the schema version."""

    TYPE: ClassVar[str]
    SOURCE: ClassVar[str]

    def subject(self) -> str:
        """The NATS subject this event is published on."""
        raise NotImplementedError

    def ce_subject(self) -> str:
        """The CloudEvents ``subject``: the pseudonymous id of the aggregate."""
        raise NotImplementedError


# -- facts about a case that other services need (categories only) ---------------------------------


class MigrationKind(StrEnum):
    LABOUR = "labour"
    MARRIAGE = "marriage"
    STUDY = "study"
    OTHER = "other"


class ReturnKind(StrEnum):
    VOLUNTARY = "voluntary"
    DEPORTED = "deported"
    RESCUED = "rescued"
    HANDED_OVER_POLICE = "handed_over_police"
    HANDED_OVER_BORDER_GUARD = "handed_over_border_guard"
    HANDED_OVER_SOCIAL_AFFAIRS = "handed_over_social_affairs"


class TraffickingStatus(StrEnum):
    IDENTIFIED = "identified"
    SUSPECTED = "suspected"
    NOT_TRAFFICKED = "not_trafficked"
    UNKNOWN = "unknown"


class AgeBand(StrEnum):
    UNDER_18 = "under_18"
    A18_24 = "18_24"
    A25_34 = "25_34"
    A35_44 = "35_44"
    A45_54 = "45_54"
    A55_PLUS = "55_plus"
    UNKNOWN = "unknown"


class CaseProfile(Contract):
    """Categories reporting counts by; nothing that identifies her."""

    migration_kind: MigrationKind | None = None
    return_kind: ReturnKind | None = None
    trafficking_status: TraffickingStatus | None = None
    gbv_experienced: bool | None = None
    age_band: AgeBand = AgeBand.UNKNOWN
    children_returned: int = Field(default=0, ge=0, le=30)


class ContactChannel(StrEnum):
    SMS = "sms"
    ZALO = "zalo"


class ContactPreferences(Contract):
    """How she may be contacted: notification obeys this, nothing more (no number here)."""

    language: Literal["vi", "en"] = "vi"
    channels: list[ContactChannel] = Field(default_factory=lambda: [ContactChannel.SMS])
    #: Local (Asia/Ho_Chi_Minh) window in which messages may be sent, "HH:MM".
    safe_hours_start: str = Field(default="07:00", pattern=HHMM_PATTERN)
    safe_hours_end: str = Field(default="21:00", pattern=HHMM_PATTERN)
    do_not_contact: bool = False


class ConsentSnapshot(Contract):
    referral: bool
    sms: bool
    statistics: bool = True
    #: Categories of partner she agreed to be referred to; None means every category.
    referral_categories: list[ServiceCategory] | None = None


class CaseStatus(StrEnum):
    OPEN = "open"
    ACTIVE = "active"
    CLOSED = "closed"


class NeedPriority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Need(Contract):
    category: ServiceCategory
    priority: NeedPriority = NeedPriority.NORMAL


# -- intake: case events ------------------------------------------------------------------------------


class CaseEvent(Event):
    SOURCE: ClassVar[str] = "/osso/intake"
    NAME: ClassVar[str]

    case_id: str = Field(pattern=TOKEN_PATTERN)
    province: ProvinceCode = Field(pattern=PROVINCE_PATTERN)

    def subject(self) -> str:
        return f"osso.case.{self.province}.{self.NAME}"

    def ce_subject(self) -> str:
        return self.case_id


class CaseOpened(CaseEvent):
    """A caseworker or hotline operator registered a case."""

    TYPE: ClassVar[str] = "vn.osso.case.opened.v1"
    NAME: ClassVar[str] = "opened"

    province_scheme: Literal["vn-2025", "vn-legacy"] = "vn-2025"
    channel: Channel
    needs: list[ServiceCategory]
    consent: ConsentSnapshot
    opened_at: AwareDatetime
    profile: CaseProfile | None = None
    contact: ContactPreferences | None = None
    #: Needs with their priorities (``needs`` keeps the plain list for older consumers).
    assessed_needs: list[Need] | None = None
    #: Her post-2025 ward (5 digits), when known: referral prefers partners serving that ward.
    ward: str | None = Field(default=None, pattern=r"^\d{5}$")


class CaseUpdated(CaseEvent):
    """Her profile categories or contact preferences changed (the new snapshot)."""

    TYPE: ClassVar[str] = "vn.osso.case.updated.v1"
    NAME: ClassVar[str] = "updated"

    profile: CaseProfile | None = None
    contact: ContactPreferences | None = None
    at: AwareDatetime


class CaseStatusChanged(CaseEvent):
    """open -> active -> closed (with a reason code) -> reopened (active again)."""

    TYPE: ClassVar[str] = "vn.osso.case.status_changed.v1"
    NAME: ClassVar[str] = "status_changed"

    from_status: CaseStatus
    to_status: CaseStatus
    reason: str | None = Field(default=None, pattern=CODE_PATTERN)
    reopened: bool = False
    at: AwareDatetime


class CaseErased(CaseEvent):
    """Her identifying data is gone for good; every service drops what it holds about her."""

    TYPE: ClassVar[str] = "vn.osso.case.erased.v1"
    NAME: ClassVar[str] = "erased"

    at: AwareDatetime


class ConsentPurpose(StrEnum):
    REFERRAL = "referral"
    SMS = "sms"
    ZALO = "zalo"
    STATISTICS = "statistics"


class ConsentChanged(CaseEvent):
    """Consent for one purpose was given or withdrawn (by a caseworker, or by her opt-out reply)."""

    TYPE: ClassVar[str] = "vn.osso.case.consent_changed.v1"
    NAME: ClassVar[str] = "consent_changed"

    purpose: ConsentPurpose
    granted: bool
    referral_categories: list[ServiceCategory] | None = None
    recorded_by: str = Field(pattern=CODE_PATTERN)  # a role or "sms_opt_out", never a person's name
    at: AwareDatetime


class NeedsAssessed(CaseEvent):
    """New or re-prioritised needs; referral matches the ones it has not referred yet."""

    TYPE: ClassVar[str] = "vn.osso.case.needs_assessed.v1"
    NAME: ClassVar[str] = "needs_assessed"

    needs: list[Need] = Field(min_length=1)
    at: AwareDatetime


class SessionRecorded(CaseEvent):
    """A counselling session took place."""

    TYPE: ClassVar[str] = "vn.osso.case.session_recorded.v1"
    NAME: ClassVar[str] = "session_recorded"

    session_id: str = Field(pattern=TOKEN_PATTERN)
    channel: Channel
    topics: list[ServiceCategory]
    duration_minutes: int = Field(ge=0, le=24 * 60)
    held_on: date
    at: AwareDatetime


# -- intake: community activities (not linked to any woman) -------------------------------------------


class ActivityKind(StrEnum):
    OUTREACH = "outreach"  # community communication sessions
    TRAINING = "training"  # trainings for officials


class Participants(Contract):
    sex: Literal["female", "male", "other"]
    role: str = Field(pattern=CODE_PATTERN)  # e.g. community_member, official, migrant_woman
    count: int = Field(ge=0, le=100_000)


class ActivityRecorded(Event):
    TYPE: ClassVar[str] = "vn.osso.activity.recorded.v1"
    SOURCE: ClassVar[str] = "/osso/intake"

    activity_id: str = Field(pattern=TOKEN_PATTERN)
    province: ProvinceCode = Field(pattern=PROVINCE_PATTERN)
    kind: ActivityKind
    topics: list[ServiceCategory] = Field(default_factory=list)
    held_on: date
    participants: list[Participants]
    at: AwareDatetime

    def subject(self) -> str:
        return f"osso.activity.{self.province}.recorded"

    def ce_subject(self) -> str:
        return self.activity_id


# -- referral ----------------------------------------------------------------------------------------


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
    """A need was matched (or referred by hand) to a partner, who is asked to take it."""

    TYPE: ClassVar[str] = "vn.osso.referral.requested.v1"
    NAME: ClassVar[str] = "requested"

    requested_at: AwareDatetime
    taxonomy_term: str | None = Field(default=None, pattern=CODE_PATTERN)
    priority: NeedPriority = NeedPriority.NORMAL
    accept_by: AwareDatetime | None = None
    manual: bool = False
    rerouted_from: str | None = Field(default=None, pattern=TOKEN_PATTERN)


class ReferralTransition(ReferralEvent):
    """A step of the closed loop; ``reason`` and ``outcome`` are codes, never prose."""

    at: AwareDatetime
    by_role: str = Field(default="partner", pattern=CODE_PATTERN)


class ReferralAccepted(ReferralTransition):
    TYPE: ClassVar[str] = "vn.osso.referral.accepted.v1"
    NAME: ClassVar[str] = "accepted"
    complete_by: AwareDatetime | None = None
    #: Her first appointment with the partner, when agreed (notification reminds her the day before).
    appointment_at: AwareDatetime | None = None


class ReferralRejected(ReferralTransition):
    TYPE: ClassVar[str] = "vn.osso.referral.rejected.v1"
    NAME: ClassVar[str] = "rejected"
    reason: str = Field(pattern=CODE_PATTERN)


class ReferralStarted(ReferralTransition):
    TYPE: ClassVar[str] = "vn.osso.referral.in_progress.v1"
    NAME: ClassVar[str] = "in_progress"


class ReferralOnHold(ReferralTransition):
    TYPE: ClassVar[str] = "vn.osso.referral.on_hold.v1"
    NAME: ClassVar[str] = "on_hold"
    reason: str | None = Field(default=None, pattern=CODE_PATTERN)


class ReferralResumed(ReferralTransition):
    TYPE: ClassVar[str] = "vn.osso.referral.resumed.v1"
    NAME: ClassVar[str] = "resumed"


class ReferralCompleted(ReferralTransition):
    TYPE: ClassVar[str] = "vn.osso.referral.completed.v1"
    NAME: ClassVar[str] = "completed"
    outcome: str = Field(pattern=CODE_PATTERN)


class ReferralFailed(ReferralTransition):
    TYPE: ClassVar[str] = "vn.osso.referral.failed.v1"
    NAME: ClassVar[str] = "failed"
    reason: str = Field(pattern=CODE_PATTERN)


class ReferralCancelled(ReferralTransition):
    TYPE: ClassVar[str] = "vn.osso.referral.cancelled.v1"
    NAME: ClassVar[str] = "cancelled"
    reason: str = Field(pattern=CODE_PATTERN)


class ReferralOverdue(ReferralTransition):
    """Not accepted (``stage=acceptance``) or not completed (``stage=completion``) in time."""

    TYPE: ClassVar[str] = "vn.osso.referral.overdue.v1"
    NAME: ClassVar[str] = "overdue"
    stage: Literal["acceptance", "completion"]
    by_role: str = Field(default="system", pattern=CODE_PATTERN)


class ReferralNoteAdded(ReferralTransition):
    """A partner added a progress note; the note itself stays in the referral service."""

    TYPE: ClassVar[str] = "vn.osso.referral.note_added.v1"
    NAME: ClassVar[str] = "note_added"


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


class PartnerChanged(Event):
    """The partner directory changed (created, updated, deactivated)."""

    TYPE: ClassVar[str] = "vn.osso.partner.changed.v1"
    SOURCE: ClassVar[str] = "/osso/referral"

    partner_id: str = Field(pattern=TOKEN_PATTERN)
    change: Literal["created", "updated", "deactivated"]
    status: Literal["active", "inactive", "temporarily_closed"]
    provinces: list[ProvinceCode]
    categories: list[ServiceCategory]
    at: AwareDatetime

    def subject(self) -> str:
        return f"osso.partner.{self.partner_id}.changed"

    def ce_subject(self) -> str:
        return self.partner_id


# -- notification ------------------------------------------------------------------------------------


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
    channel: ContactChannel = ContactChannel.SMS
    encoding: Literal["GSM-7", "UCS-2"] | None = None


class MessageDelivered(NotificationEvent):
    TYPE: ClassVar[str] = "vn.osso.notification.delivered.v1"
    NAME: ClassVar[str] = "delivered"

    at: AwareDatetime


class MessageFailed(NotificationEvent):
    TYPE: ClassVar[str] = "vn.osso.notification.failed.v1"
    NAME: ClassVar[str] = "failed"

    reason: str = Field(pattern=CODE_PATTERN)
    at: AwareDatetime


class MessageCancelled(NotificationEvent):
    TYPE: ClassVar[str] = "vn.osso.notification.cancelled.v1"
    NAME: ClassVar[str] = "cancelled"

    reason: str = Field(pattern=CODE_PATTERN)
    at: AwareDatetime


class OptedOut(Event):
    """She replied with an opt-out keyword: every pending message is cancelled and consent for
    the channel is withdrawn (intake records it)."""

    TYPE: ClassVar[str] = "vn.osso.notification.opted_out.v1"
    SOURCE: ClassVar[str] = "/osso/notification"

    case_id: str = Field(pattern=TOKEN_PATTERN)
    province: ProvinceCode = Field(pattern=PROVINCE_PATTERN)
    channel: ContactChannel
    at: AwareDatetime

    def subject(self) -> str:
        return f"osso.notification.{self.province}.opted_out"

    def ce_subject(self) -> str:
        return self.case_id


ALL_EVENTS: tuple[type[Event], ...] = (
    CaseOpened, CaseUpdated, CaseStatusChanged, CaseErased, ConsentChanged, NeedsAssessed,
    SessionRecorded, ActivityRecorded,
    ReferralRequested, ReferralAccepted, ReferralRejected, ReferralStarted, ReferralOnHold,
    ReferralResumed, ReferralCompleted, ReferralFailed, ReferralCancelled, ReferralOverdue,
    ReferralNoteAdded, NeedUnmatched, PartnerChanged,
    FollowUpScheduled, MessageSent, MessageDelivered, MessageFailed, MessageCancelled, OptedOut,
)  # fmt: skip

EVENT_TYPES: dict[str, type[Event]] = {cls.TYPE: cls for cls in ALL_EVENTS}


def event_type(name: str) -> type[Event]:
    """The model registered for a CloudEvents type; ``KeyError`` when unknown."""
    return EVENT_TYPES[name]
