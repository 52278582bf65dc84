"""Notification settings: ``OSSO_NOTIFICATION_*`` (plus the shared ``OSSO_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import DEFAULT_PORTS, ServiceSettings

PACKAGE_DIR = Path(__file__).resolve().parent


class NotificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OSSO_NOTIFICATION_", extra="ignore")

    port: int = DEFAULT_PORTS["notification"]
    #: Where intake answers the audited contact look-up at send time.
    intake_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['intake']}"

    # -- what is sent when ------------------------------------------------------------------------
    #: The follow-up plans (versioned TOML, validated at start).
    plan_file: Path = PACKAGE_DIR / "plans.toml"
    #: The message templates, Vietnamese and English (TOML of Jinja2 texts).
    template_file: Path = PACKAGE_DIR / "templates.toml"
    #: Multiplies every delay of the plans: 0 makes every follow-up due at once (tests, demos).
    delay_scale: float = Field(default=1.0, ge=0)
    #: Strip diacritics (đ -> d) so a Vietnamese text stays in GSM-7: 160 characters a segment, not 70.
    unaccented: bool = False
    #: A neutral sender name: nothing on her screen may reveal what the office does.
    sender_name: str = "TB-HoTro"

    # -- quiet hours --------------------------------------------------------------------------------
    #: Her safe hours when the case did not say (local time, ``timezone``), "HH:MM".
    safe_hours_start: str = Field(default="07:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    safe_hours_end: str = Field(default="21:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = "Asia/Ho_Chi_Minh"
    #: Turn safe-hours enforcement off: for automated tests that run at any hour, never in production.
    quiet_hours_enabled: bool = True
    #: Seconds added to the wall clock (tests drive quiet hours of real processes with it).
    clock_offset: float = 0.0

    # -- sending ------------------------------------------------------------------------------------
    provider: Literal["file", "http"] = "file"
    #: The ``file`` provider's output; empty means ``<data_dir>/notification/sms-outbox.jsonl``.
    outbox_file: Path | None = None
    #: The ``http`` provider: JSON POST to ``http_url`` with ``Authorization: Bearer <http_api_key>``.
    http_url: str = ""
    http_api_key: str = ""
    #: Seconds one HTTP attempt may take, attempts per send, first backoff (doubles each retry).
    http_timeout: float = Field(default=5.0, gt=0)
    http_attempts: int = Field(default=3, ge=1, le=10)
    http_backoff: float = Field(default=0.2, ge=0)
    #: Consecutive failed sends that open the circuit, and seconds it stays open before a trial.
    circuit_failures: int = Field(default=5, ge=1)
    circuit_reset: float = Field(default=30.0, gt=0)
    #: Messages per second the provider accepts (0: no limit).
    rate_limit: float = Field(default=50.0, ge=0)
    #: Sends before a message is given up as failed.
    max_attempts: int = Field(default=8, ge=1)

    #: Seconds between looks for due messages, messages claimed per look, and how long a claim lasts
    #: (a replica that crashed mid-send loses its claim after this; the message is retried with the
    #: same idempotency key, so the provider does not send it twice).
    dispatch_interval: float = Field(default=0.2, gt=0)
    dispatch_batch: int = Field(default=100, ge=1, le=1000)
    lease_seconds: float = Field(default=60.0, gt=0)
    #: Concurrent contact look-ups and sends within one batch.
    send_concurrency: int = Field(default=8, ge=1, le=100)

    # -- webhooks and her number ---------------------------------------------------------------------
    #: Shared secret of the provider's webhooks (HMAC-SHA256 of the body in ``X-Osso-Signature``).
    #: Empty means: read or create ``<data_dir>/keys/notification-webhook-secret`` (development).
    webhook_secret: str = ""
    #: Key of the keyed hash of her number (to recognise her reply without storing the number).
    #: Empty means: read or create ``<data_dir>/keys/notification-phone-hash-key`` (development).
    phone_hash_key: str = ""

    #: Deprecated (walking skeleton): use the plan file and ``delay_scale``.
    checkin_delay: float | None = Field(default=None, ge=0)
