"""Referral settings: ``OSSO_REFERRAL_*`` (plus the shared ``OSSO_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import DEFAULT_PORTS, ServiceSettings
from shared.vocab import ServiceCategory


class ReferralSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OSSO_REFERRAL_", extra="ignore")

    port: int = DEFAULT_PORTS["referral"]
    #: A partner directory (HSDS 3.0 JSON, or the simple ``{"partners": [...]}`` list) upserted at
    #: start; ``osso up`` points it at the demo directory.
    seed_file: Path | None = None
    #: Working days a partner has to accept a referral, per category (JSON, e.g. ``{"legal": 2}``).
    accept_working_days: dict[ServiceCategory, int] = Field(default_factory=dict)
    default_accept_working_days: int = Field(default=3, ge=1, le=60)
    #: Working days from acceptance to completion, per category, and the default.
    complete_working_days: dict[ServiceCategory, int] = Field(default_factory=dict)
    default_complete_working_days: int = Field(default=20, ge=1, le=365)
    #: Re-route an overdue referral to the next-best partner unless the caseworker turned it off.
    auto_reroute: bool = True
    #: Count Vietnam's public holidays (Tết...) as days off, besides weekends.
    public_holidays: bool = True
    #: Seconds between overdue sweeps; 0 turns the sweeper off (tests drive it with their own clock).
    overdue_interval: float = Field(default=300.0, ge=0)
    #: Where intake answers the audited read of her consented details for a partner.
    intake_url: str = "http://127.0.0.1:8001"
    intake_timeout: float = Field(default=5.0, gt=0)

    def accept_days(self, category: ServiceCategory) -> int:
        return self.accept_working_days.get(category, self.default_accept_working_days)

    def complete_days(self, category: ServiceCategory) -> int:
        return self.complete_working_days.get(category, self.default_complete_working_days)
