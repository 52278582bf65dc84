"""The case: lifecycle, consent, needs and sessions. Pure rules; every change records an event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from shared.events import (
    AgeBand,
    CaseErased,
    CaseOpened,
    CaseProfile,
    CaseStatus,
    CaseStatusChanged,
    CaseUpdated,
    ConsentChanged,
    ConsentPurpose,
    ConsentSnapshot,
    ContactPreferences,
    Event,
    Need,
    NeedPriority,
    NeedsAssessed,
    SessionRecorded,
)
from shared.vocab import Channel, ServiceCategory


class DomainError(ValueError):
    """A rule of the domain was broken; the message says which."""


class IllegalTransition(DomainError):
    """The case's status does not allow this (e.g. a session on a closed case)."""


class CloseReason(StrEnum):
    RESOLVED = "resolved"
    REFERRED_OUT = "referred_out"
    UNREACHABLE = "unreachable"
    DECLINED = "declined"
    MOVED_AWAY = "moved_away"
    DUPLICATE = "duplicate"
    DECEASED = "deceased"
    OTHER = "other"


@dataclass(frozen=True)
class Consent:
    """What she agreed to, per purpose; ``referral_categories`` None means every category."""

    referral: bool
    sms: bool
    zalo: bool = False
    statistics: bool = True
    referral_categories: tuple[ServiceCategory, ...] | None = None

    def granted(self, purpose: ConsentPurpose) -> bool:
        return bool(getattr(self, purpose.value))

    def snapshot(self) -> ConsentSnapshot:
        return ConsentSnapshot(
            referral=self.referral,
            sms=self.sms,
            statistics=self.statistics,
            referral_categories=list(self.referral_categories)
            if self.referral_categories is not None
            else None,
        )


def age_band(year_of_birth: int | None, today: date) -> AgeBand:
    """Her age band on ``today`` from the year of birth (a year is enough for a band)."""
    if year_of_birth is None:
        return AgeBand.UNKNOWN
    age = today.year - year_of_birth
    for limit, band in ((18, AgeBand.UNDER_18), (25, AgeBand.A18_24), (35, AgeBand.A25_34)):
        if age < limit:
            return band
    for limit, band in ((45, AgeBand.A35_44), (55, AgeBand.A45_54)):
        if age < limit:
            return band
    return AgeBand.A55_PLUS


def merge_needs(current: list[Need], new: list[Need]) -> list[Need]:
    """Current needs with ``new`` ones added or re-prioritised, in first-seen order."""
    merged = {n.category: n for n in current}
    for need in new:
        merged[need.category] = need
    return list(merged.values())


@dataclass
class Case:
    id: str
    province: str
    channel: Channel
    needs: list[ServiceCategory]
    consent: Consent
    opened_at: datetime
    has_phone: bool
    status: str = CaseStatus.OPEN.value
    priorities: dict[ServiceCategory, NeedPriority] = field(default_factory=dict)
    profile: CaseProfile = field(default_factory=CaseProfile)
    contact: ContactPreferences = field(default_factory=ContactPreferences)
    close_reason: str | None = None
    erased: bool = False
    events: list[Event] = field(default_factory=list)

    @property
    def assessed_needs(self) -> list[Need]:
        # Built from typed fields, so not validated again (a third of a registration's Need cost).
        return [
            Need.model_construct(category=c, priority=self.priorities.get(c, NeedPriority.NORMAL))
            for c in self.needs
        ]

    @classmethod
    def open(
        cls,
        *,
        case_id: str,
        province: str,
        channel: Channel,
        needs: list[ServiceCategory],
        consent: Consent,
        has_phone: bool,
        at: datetime,
        priorities: dict[ServiceCategory, NeedPriority] | None = None,
        profile: CaseProfile | None = None,
        contact: ContactPreferences | None = None,
        ward: str | None = None,
    ) -> Case:
        """Register a case. Needs are kept once each, in the order given. ``ward`` (a post-2025
        ward code, not an address) travels on the event so referral can prefer partners serving it."""
        if at.tzinfo is None:
            raise DomainError("opening time must carry a time zone")
        unique_needs = list(dict.fromkeys(needs))
        if not unique_needs:
            raise DomainError("needs: at least one service category is required")
        _check_contact_consent(consent, has_phone)
        case = cls(
            case_id,
            province,
            channel,
            unique_needs,
            consent,
            at,
            has_phone,
            priorities=dict(priorities or {}),
            profile=profile or CaseProfile(),
            contact=contact or ContactPreferences(),
        )
        case.events.append(
            CaseOpened(
                case_id=case_id,
                province=province,
                channel=channel,
                needs=unique_needs,
                consent=consent.snapshot(),
                opened_at=at,
                profile=case.profile,
                contact=case.contact,
                assessed_needs=case.assessed_needs,
                ward=ward,
            )
        )
        return case

    # -- changes -----------------------------------------------------------------------------------
    def _check_not_erased(self) -> None:
        if self.erased:
            raise IllegalTransition("the case was erased")

    def update(
        self, *, at: datetime, profile: CaseProfile | None = None, contact: ContactPreferences | None = None
    ) -> None:
        """New profile categories and/or contact preferences (identity changes also call this)."""
        self._check_not_erased()
        if profile is not None:
            self.profile = profile
        if contact is not None:
            self.contact = contact
        self.events.append(
            CaseUpdated(
                case_id=self.id, province=self.province, profile=self.profile, contact=self.contact, at=at
            )
        )

    def phone_changed(self, has_phone: bool) -> None:
        """Her phones were edited; contact consents that need a phone must still have one."""
        _check_contact_consent(self.consent, has_phone)
        self.has_phone = has_phone

    def set_consent(
        self,
        purpose: ConsentPurpose,
        granted: bool,
        *,
        recorded_by: str,
        at: datetime,
        referral_categories: list[ServiceCategory] | None = None,
    ) -> bool:
        """Give or withdraw consent for one purpose; returns whether anything changed."""
        self._check_not_erased()
        categories = tuple(dict.fromkeys(referral_categories)) if referral_categories is not None else None
        if purpose is not ConsentPurpose.REFERRAL and referral_categories is not None:
            raise DomainError("referral_categories: only the referral consent has partner categories")
        current = self.consent
        changes: dict[str, object] = {purpose.value: granted}
        if purpose is ConsentPurpose.REFERRAL:
            changes["referral_categories"] = categories
        new = Consent(**{**current.__dict__, **changes})  # type: ignore[arg-type]
        if new == current:
            return False
        if purpose in (ConsentPurpose.SMS, ConsentPurpose.ZALO) and granted:
            _check_contact_consent(new, self.has_phone)
        self.consent = new
        self.events.append(
            ConsentChanged(
                case_id=self.id,
                province=self.province,
                purpose=purpose,
                granted=granted,
                referral_categories=list(categories) if categories is not None else None,
                recorded_by=recorded_by,
                at=at,
            )
        )
        return True

    def assess_needs(self, needs: list[Need], at: datetime) -> None:
        """Add needs or change their priority."""
        self._check_not_erased()
        if self.status == CaseStatus.CLOSED:
            raise IllegalTransition("the case is closed: reopen it before assessing needs")
        if not needs:
            raise DomainError("needs: at least one need is required")
        unique = list({n.category: n for n in needs}.values())
        merged = merge_needs(self.assessed_needs, unique)
        self.needs = [n.category for n in merged]
        self.priorities = {n.category: n.priority for n in merged}
        self.events.append(NeedsAssessed(case_id=self.id, province=self.province, needs=unique, at=at))

    def record_session(
        self,
        *,
        session_id: str,
        channel: Channel,
        topics: list[ServiceCategory],
        duration_minutes: int,
        held_on: date,
        at: datetime,
    ) -> None:
        """A counselling session; the first one makes an open case active."""
        self._check_not_erased()
        if self.status == CaseStatus.CLOSED:
            raise IllegalTransition("the case is closed: reopen it before recording a session")
        if held_on > at.date():
            raise DomainError("held_on: a session cannot be recorded before it took place")
        self.events.append(
            SessionRecorded(
                case_id=self.id,
                province=self.province,
                session_id=session_id,
                channel=channel,
                topics=list(dict.fromkeys(topics)),
                duration_minutes=duration_minutes,
                held_on=held_on,
                at=at,
            )
        )
        if self.status == CaseStatus.OPEN:
            self._move(CaseStatus.ACTIVE, at)

    def activate(self, at: datetime) -> None:
        self._check_not_erased()
        if self.status != CaseStatus.OPEN:
            raise IllegalTransition(f"only an open case can be activated, this one is {self.status}")
        self._move(CaseStatus.ACTIVE, at)

    def close(self, reason: CloseReason, at: datetime) -> None:
        self._check_not_erased()
        if self.status == CaseStatus.CLOSED:
            raise IllegalTransition("the case is already closed")
        self.close_reason = reason.value
        self._move(CaseStatus.CLOSED, at, reason=reason.value)

    def reopen(self, at: datetime) -> None:
        self._check_not_erased()
        if self.status != CaseStatus.CLOSED:
            raise IllegalTransition(f"only a closed case can be reopened, this one is {self.status}")
        self.close_reason = None
        self._move(CaseStatus.ACTIVE, at, reopened=True)

    def erase(self, at: datetime) -> None:
        """Her identifying data goes; categories stay so the aggregates stay right."""
        self._check_not_erased()
        self.erased = True
        self.has_phone = False
        self.events.append(CaseErased(case_id=self.id, province=self.province, at=at))

    def _move(
        self, to: CaseStatus, at: datetime, *, reason: str | None = None, reopened: bool = False
    ) -> None:
        self.events.append(
            CaseStatusChanged(
                case_id=self.id,
                province=self.province,
                from_status=CaseStatus(self.status),
                to_status=to,
                reason=reason,
                reopened=reopened,
                at=at,
            )
        )
        self.status = to.value


def _check_contact_consent(consent: Consent, has_phone: bool) -> None:
    if consent.sms and not has_phone:
        raise DomainError("phone: required when she consents to SMS contact")
    if consent.zalo and not has_phone:
        raise DomainError("phone: required when she consents to Zalo contact")
