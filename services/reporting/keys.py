"""The reporting hash key: from settings, or a development key file under the data dir."""

from __future__ import annotations

from services.reporting.periods import Phases
from services.reporting.projections import Hasher
from services.reporting.settings import ReportingSettings
from shared.crypto import ensure_secret_file


def hasher_for(settings: ReportingSettings) -> Hasher:
    """The keyed hash every reporting process (live or rebuild) must share."""
    key = settings.hash_key or ensure_secret_file(settings.platform.data_dir / "keys" / "reporting-hash-key")
    return Hasher(key.encode())


def phases_for(settings: ReportingSettings) -> Phases:
    return Phases.of(settings.phases)
