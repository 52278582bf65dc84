"""Intake's rules: pure, no I/O. A case records what happened to it as events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shared.events import CaseOpened, ConsentSnapshot, Event
from shared.vocab import Channel, ServiceCategory


class DomainError(ValueError):
    """A rule of the domain was broken; the message says which."""


@dataclass(frozen=True)
class Consent:
    referral: bool
    sms: bool


@dataclass
class Case:
    id: str
    province: str
    channel: Channel
    needs: list[ServiceCategory]
    consent: Consent
    opened_at: datetime
    has_phone: bool
    status: str = "open"
    events: list[Event] = field(default_factory=list)

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
    ) -> Case:
        """Register a case. Needs are kept once each, in the order given."""
        if at.tzinfo is None:
            raise DomainError("opening time must carry a time zone")
        unique_needs = list(dict.fromkeys(needs))
        if not unique_needs:
            raise DomainError("needs: at least one service category is required")
        if consent.sms and not has_phone:
            raise DomainError("phone: required when she consents to SMS contact")
        case = cls(case_id, province, channel, unique_needs, consent, at, has_phone)
        case.events.append(
            CaseOpened(
                case_id=case_id,
                province=province,
                channel=channel,
                needs=unique_needs,
                consent=ConsentSnapshot(referral=consent.referral, sms=consent.sms),
                opened_at=at,
            )
        )
        return case
