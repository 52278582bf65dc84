"""Reporting settings: ``OSSO_REPORTING_*`` (plus the shared ``OSSO_*``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import DEFAULT_PORTS, ServiceSettings


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OSSO_REPORTING_", extra="ignore")

    port: int = DEFAULT_PORTS["reporting"]
