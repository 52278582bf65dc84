"""Notification settings: ``OSSO_NOTIFICATION_*`` (plus the shared ``OSSO_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import DEFAULT_PORTS, ServiceSettings


class NotificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OSSO_NOTIFICATION_", extra="ignore")

    port: int = DEFAULT_PORTS["notification"]
    #: Where intake answers the audited contact look-up at send time.
    intake_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['intake']}"
    provider: Literal["file"] = "file"
    #: The ``file`` provider's output; empty means ``<data_dir>/notification/sms-outbox.jsonl``.
    outbox_file: Path | None = None
    #: A neutral sender name: nothing on her screen may reveal what the office does.
    sender_name: str = "TB-HoTro"
    #: Seconds after a referral is requested before the check-in message is due.
    checkin_delay: float = Field(default=0.0, ge=0)
    #: Seconds between looks for due messages, and how long a replica's claim on one lasts.
    dispatch_interval: float = Field(default=0.2, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0)
