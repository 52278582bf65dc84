"""Referral settings: ``OSSO_REFERRAL_*`` (plus the shared ``OSSO_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from shared.settings import DEFAULT_PORTS, ServiceSettings


class ReferralSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OSSO_REFERRAL_", extra="ignore")

    port: int = DEFAULT_PORTS["referral"]
    #: A partner directory (JSON) upserted at start; ``osso up`` points it at the demo directory.
    seed_file: Path | None = None
