"""Request and response bodies of intake's API. Every input model forbids unknown fields, and no
validation message repeats the value it rejects (it may identify her)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from services.intake.domain import CloseReason, InvalidCitizenId, clean_name, normalise_cccd
from shared.events import (
    HHMM_PATTERN,
    ActivityKind,
    AgeBand,
    CaseStatus,
    ContactChannel,
    MigrationKind,
    NeedPriority,
    ReturnKind,
    TraffickingStatus,
)
from shared.phones import InvalidPhone, to_e164
from shared.provinces import UnknownProvince, UnknownWard, resolve_province, resolve_ward
from shared.vocab import Channel, ServiceCategory

Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,64}$")]
Scheme = Literal["vn-2025", "vn-legacy"]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _phone(value: str) -> str:
    try:
        return to_e164(value, mobile_only=True)
    except InvalidPhone as exc:
        raise ValueError(str(exc)) from None


def _province(value: str, scheme: str) -> str:
    try:
        return resolve_province(value, scheme).code
    except UnknownProvince as exc:
        raise ValueError(str(exc)) from None


# -- the case file ------------------------------------------------------------------------------------


class ConsentIn(Input):
    referral: bool = Field(description="She agrees to be referred to partner organisations")
    sms: bool = Field(description="She agrees to be contacted by SMS")
    zalo: bool = Field(default=False, description="She agrees to be contacted on Zalo")
    statistics: bool = Field(default=True, description="Her case may be counted in anonymous statistics")
    referral_categories: list[ServiceCategory] | None = Field(
        default=None, max_length=6, description="Partner categories she agrees to; null = every category"
    )


class AddressIn(Input):
    """Where she lives now: province (old codes and names map to the post-2025 list) and ward."""

    province: str | None = Field(default=None, min_length=1, max_length=64)
    province_scheme: Scheme = "vn-2025"
    ward: str | None = Field(default=None, pattern=r"^\d{1,5}$", description="post-2025 ward code")
    line: str | None = Field(default=None, max_length=300, description="street, hamlet (encrypted)")

    @model_validator(mode="after")
    def _resolve(self) -> AddressIn:
        if self.province is not None:
            try:
                self.province = _province(self.province, self.province_scheme)
            except ValueError as exc:
                raise ValueError(f"address.province: {exc}") from None
            self.province_scheme = "vn-2025"
        if self.ward is not None:
            if self.province is None:
                raise ValueError("address.ward: give the province of the ward too")
            try:
                self.ward = resolve_ward(self.ward, self.province)
            except UnknownWard as exc:
                raise ValueError(f"address.ward: {exc}") from None
        return self


class ContactIn(Input):
    """How to contact her safely."""

    language: Literal["vi", "en"] = "vi"
    channels: list[ContactChannel] = Field(default_factory=lambda: [ContactChannel.SMS], max_length=2)
    safe_hours_start: str = Field(default="07:00", pattern=HHMM_PATTERN)
    safe_hours_end: str = Field(default="21:00", pattern=HHMM_PATTERN)
    do_not_contact: bool = False


class WomanIn(Input):
    full_name: str | None = Field(default=None, min_length=1, max_length=120)
    birth_date: date | None = None
    birth_year: int | None = Field(default=None, ge=1920, le=2030)
    phones: list[str] = Field(default_factory=list, max_length=5)
    cccd: str | None = Field(default=None, max_length=20, description="citizen ID, 12 digits")
    address: AddressIn | None = None

    @field_validator("full_name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = clean_name(value)
        if any(ch.isdigit() for ch in name) or not any(ch.isalpha() for ch in name):
            raise ValueError("a name has letters, not digits")
        return name

    @field_validator("phones")
    @classmethod
    def _phones(cls, values: list[str]) -> list[str]:
        out = []
        for i, raw in enumerate(values):
            try:
                out.append(_phone(raw))
            except ValueError as exc:
                raise ValueError(f"phones.{i}: {exc}") from None
        return list(dict.fromkeys(out))

    @model_validator(mode="after")
    def _consistent(self) -> WomanIn:
        if self.birth_date is not None:
            if self.birth_year is not None and self.birth_year != self.birth_date.year:
                raise ValueError("birth_year: does not match birth_date")
            self.birth_year = self.birth_date.year
        if self.cccd is not None:
            try:
                self.cccd = normalise_cccd(self.cccd, self.birth_year)
            except InvalidCitizenId as exc:
                raise ValueError(f"cccd: {exc}") from None
        return self


class StoryIn(Input):
    """Her story as categories; ``notes`` is the only free text, and it is encrypted."""

    destination_country: str | None = Field(
        default=None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, e.g. CN, KR, MY"
    )
    years_abroad: int | None = Field(default=None, ge=0, le=80)
    migration_kind: MigrationKind | None = None
    return_kind: ReturnKind | None = None
    trafficking_status: TraffickingStatus | None = None
    gbv_experienced: bool | None = None
    risk_flags: list[Literal["pursuer_active", "re_trafficking_risk", "self_harm_risk", "debt_bondage"]] = (
        Field(default_factory=list, max_length=4)
    )
    notes: str | None = Field(default=None, max_length=4000)


class ChildIn(Input):
    name: str | None = Field(default=None, min_length=1, max_length=120, description="encrypted")
    age: int | None = Field(default=None, ge=0, le=17)
    sex: Literal["female", "male", "other"] | None = None
    nationality: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    civil_status_papers: Literal["complete", "missing", "in_progress", "unknown"] = "unknown"
    birth_registered: bool | None = None
    school_enrolment_needed: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return clean_name(value) if value is not None else None


class NeedIn(Input):
    category: ServiceCategory
    priority: NeedPriority = NeedPriority.NORMAL


class CaseIn(Input):
    """A new case. ``province`` is a code in ``province_scheme`` or a province name (old names map)."""

    province: str = Field(min_length=1, max_length=64, examples=["01"])
    province_scheme: Scheme = "vn-2025"
    channel: Channel
    needs: list[ServiceCategory] = Field(min_length=1, max_length=len(ServiceCategory))
    priorities: dict[ServiceCategory, NeedPriority] = Field(default_factory=dict)
    consent: ConsentIn
    phone: str | None = Field(default=None, max_length=32, examples=["0912345678"])
    woman: WomanIn | None = None
    story: StoryIn | None = None
    children: list[ChildIn] = Field(default_factory=list, max_length=20)
    contact: ContactIn | None = None
    confirm_not_duplicate: bool = Field(
        default=False, description="Register even though possible duplicates were reported"
    )

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return _phone(value)

    @model_validator(mode="after")
    def _province(self) -> CaseIn:
        try:
            self.province = _province(self.province, self.province_scheme)
        except ValueError as exc:
            raise ValueError(f"province: {exc}") from None
        # Stored and published in the post-2025 list, whatever list it was typed in.
        self.province_scheme = "vn-2025"
        return self


class CasePatch(Input):
    """Replace any of these parts of the case file (each part as a whole)."""

    woman: WomanIn | None = None
    story: StoryIn | None = None
    children: list[ChildIn] | None = Field(default=None, max_length=20)
    contact: ContactIn | None = None


class ConsentPut(Input):
    """Consent per purpose; purposes left out are unchanged."""

    referral: bool | None = None
    sms: bool | None = None
    zalo: bool | None = None
    statistics: bool | None = None
    referral_categories: list[ServiceCategory] | None = Field(default=None, max_length=6)


class NeedsIn(Input):
    needs: list[NeedIn] = Field(min_length=1, max_length=len(ServiceCategory))


class SessionIn(Input):
    held_on: date
    channel: Channel
    topics: list[ServiceCategory] = Field(min_length=1, max_length=len(ServiceCategory))
    duration_minutes: int = Field(ge=1, le=24 * 60)
    counsellor: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="staff code"
    )
    notes: str | None = Field(default=None, max_length=4000, description="encrypted")


class CloseIn(Input):
    reason: CloseReason


# -- responses ----------------------------------------------------------------------------------------


class ConsentOut(BaseModel):
    referral: bool
    sms: bool
    zalo: bool = False
    statistics: bool = True
    referral_categories: list[ServiceCategory] | None = None


class NeedOut(BaseModel):
    category: ServiceCategory
    priority: NeedPriority


class WomanOut(BaseModel):
    full_name: str | None = None
    birth_date: date | None = None
    birth_year: int | None = None
    phones: list[str] = Field(default_factory=list)
    cccd: str | None = None
    address: dict[str, str | None] | None = None
    age_band: AgeBand = AgeBand.UNKNOWN


class ChildOut(BaseModel):
    name: str | None = None
    age: int | None = None
    sex: str | None = None
    nationality: str | None = None
    civil_status_papers: str = "unknown"
    birth_registered: bool | None = None
    school_enrolment_needed: bool = False


class DuplicateCandidate(BaseModel):
    case_id: str
    matched_on: list[str]


class CaseOut(BaseModel):
    id: str
    province: str
    channel: Channel
    needs: list[ServiceCategory]
    assessed_needs: list[NeedOut] = Field(default_factory=list)
    consent: ConsentOut
    status: CaseStatus
    close_reason: str | None = None
    opened_at: datetime
    updated_at: datetime | None = None
    phone_masked: str | None = None
    woman: WomanOut | None = None
    story: dict[str, object] | None = None
    children: list[ChildOut] = Field(default_factory=list)
    contact: ContactIn | None = None
    possible_duplicates: list[DuplicateCandidate] = Field(
        default_factory=list, description="Cases sharing a phone number (reported, never merged)"
    )


class CaseSummary(BaseModel):
    id: str
    province: str
    status: CaseStatus
    channel: Channel
    opened_at: datetime
    full_name: str | None = None
    birth_year: int | None = None
    phone_masked: str | None = None
    needs: list[ServiceCategory]


class CaseList(BaseModel):
    items: list[CaseSummary]
    total: int
    limit: int
    offset: int


class ConsentRecordOut(BaseModel):
    purpose: str
    granted: bool
    referral_categories: list[ServiceCategory] | None = None
    recorded_by: str
    actor: str
    at: datetime


class SessionOut(BaseModel):
    id: str
    case_id: str
    held_on: date
    channel: Channel
    topics: list[ServiceCategory]
    duration_minutes: int
    counsellor: str
    recorded_at: datetime


class ParticipantsIn(Input):
    sex: Literal["female", "male", "other"]
    role: Code = Field(description="e.g. community_member, official, migrant_woman, student")
    count: int = Field(ge=0, le=100_000)


class ActivityIn(Input):
    province: str = Field(min_length=1, max_length=64)
    province_scheme: Scheme = "vn-2025"
    kind: ActivityKind
    held_on: date
    topics: list[ServiceCategory] = Field(default_factory=list, max_length=len(ServiceCategory))
    title: str | None = Field(default=None, max_length=200)
    participants: list[ParticipantsIn] = Field(min_length=1, max_length=50)

    @model_validator(mode="after")
    def _province(self) -> ActivityIn:
        try:
            self.province = _province(self.province, self.province_scheme)
        except ValueError as exc:
            raise ValueError(f"province: {exc}") from None
        self.province_scheme = "vn-2025"
        return self


class ActivityOut(BaseModel):
    id: str
    province: str
    kind: ActivityKind
    held_on: date
    topics: list[ServiceCategory]
    title: str | None = None
    participants: list[ParticipantsIn]
    total_participants: int
    recorded_at: datetime


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    case_id: str
    fields: list[str]
    purpose: str


class ContactOut(BaseModel):
    """What notification needs at send time: her number and the rules for contacting her."""

    case_id: str
    phone: str | None
    sms_consent: bool
    zalo_consent: bool = False
    status: str
    language: str = "vi"
    safe_hours_start: str = "07:00"
    safe_hours_end: str = "21:00"
    do_not_contact: bool = False
    channels: list[ContactChannel] = Field(default_factory=list)


class SharedDetailsOut(BaseModel):
    """Her details for a partner she was referred to: only consented, only needed fields."""

    case_id: str
    fields: dict[str, str]
    do_not_contact: bool


CLOSE_REASONS = [r.value for r in CloseReason]
