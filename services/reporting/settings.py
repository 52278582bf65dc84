"""Reporting settings: ``OSSO_REPORTING_*`` (plus the shared ``OSSO_*``)."""

from __future__ import annotations

from datetime import date

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import DEFAULT_PORTS, ServiceSettings

#: Project phases as named date ranges (inclusive); reports can ask for a phase by name.
DEFAULT_PHASES: dict[str, tuple[date, date]] = {
    "phase-1": (date(2024, 1, 1), date(2025, 6, 30)),
    "phase-2": (date(2025, 7, 1), date(2027, 12, 31)),
}


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OSSO_REPORTING_", extra="ignore")

    port: int = DEFAULT_PORTS["reporting"]
    #: Key of the keyed hash (HMAC-SHA256) that stands for case and referral ids in projections.
    #: Empty means: read or create ``<data_dir>/keys/reporting-hash-key`` (development only).
    hash_key: str = ""
    #: Named project phases, JSON ``{"phase-1": ["2024-01-01", "2025-06-30"]}``; changing them
    #: needs ``osso reporting rebuild`` (phase totals are pre-aggregated).
    phases: dict[str, tuple[date, date]] = Field(default_factory=lambda: dict(DEFAULT_PHASES))
    #: Smallest figure a donor may see; smaller cells show as "<k" (2..11).
    suppression_k: int = Field(default=5, ge=2, le=11)
    #: Figures ``osso reporting rebuild`` keeps as they come (some 250 bytes each) before it sends
    #: them to its spreading process (``spreader``), which spreads them over their cells (``rollup``:
    #: some 20 cells each before they are added up, about 16 bytes a cell after) while the replay
    #: goes on. The last ones are spread after the replay: fewer, less to wait for at the end.
    rebuild_figures: int = Field(default=50_000, ge=1_000)

    @field_validator("phases")
    @classmethod
    def _phases_are_ranges(cls, value: dict[str, tuple[date, date]]) -> dict[str, tuple[date, date]]:
        for name, (start, end) in value.items():
            if start > end:
                raise ValueError(f"phase {name!r} starts ({start}) after it ends ({end})")
            if not name or any(c in name for c in ":/ "):
                raise ValueError(f"phase name {name!r} must be a non-empty token")
        return value
