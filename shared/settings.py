"""Settings shared by every service, read once at start from ``OSSO_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The embedded nats-server listens here so it never clashes with a system NATS on 4222.
EMBEDDED_NATS_PORT = 4322

DEFAULT_PORTS = {"intake": 8001, "referral": 8002, "notification": 8003, "reporting": 8004}


class BusSettings(BaseSettings):
    """How a service talks to NATS JetStream and handles failed deliveries (``OSSO_*``)."""

    model_config = SettingsConfigDict(env_prefix="OSSO_", extra="ignore")

    #: One URL, or several separated by commas (the nodes of a cluster).
    nats_url: str = f"nats://127.0.0.1:{EMBEDDED_NATS_PORT}"
    #: Deliveries of one message before it is dead-lettered. With the exponential redelivery
    #: delay this spans about two minutes: long enough for an event from another stream that
    #: it depends on (e.g. case.opened held by a replica that died) to come back after ack_wait.
    max_deliver: int = Field(default=8, ge=1, le=100)
    #: Seconds the server waits for an ack before redelivering. Consumers send in-progress
    #: heartbeats while a batch is being applied, so this can be short.
    ack_wait: float = Field(default=10.0, gt=0)
    #: Seconds before a failed message is redelivered (grows with each attempt).
    nak_delay: float = Field(default=1.0, ge=0)
    #: Messages a consumer takes per fetch, and seconds it waits to fill a batch.
    batch_size: int = Field(default=100, ge=1, le=1000)
    batch_timeout: float = Field(default=0.02, gt=0)
    #: Seconds an idle consumer's pull waits on the server for the first message of a batch.
    idle_poll: float = Field(default=5.0, gt=0, le=60)
    #: Replicas of each stream: 1 for the embedded server, 3 for a cluster.
    stream_replicas: int = Field(default=1, ge=1, le=5)
    #: Seconds within which a re-published event id is dropped by the server.
    duplicate_window: float = Field(default=120.0, gt=0)

    @property
    def nats_servers(self) -> list[str]:
        return [u.strip() for u in self.nats_url.split(",") if u.strip()]

    #: Seconds between outbox polls when nothing woke the relay.
    outbox_poll_interval: float = Field(default=0.25, gt=0)


class ObservabilitySettings(BaseSettings):
    """Logging, tracing and metrics (``OSSO_*``)."""

    model_config = SettingsConfigDict(env_prefix="OSSO_", extra="ignore")

    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    #: ``none`` (default), ``console`` or ``otlp`` (OTLP over HTTP to ``otel_endpoint``).
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    otel_endpoint: str = "http://127.0.0.1:4318"


class PlatformSettings(BaseSettings):
    """Where local state lives and the service-to-service secret (``OSSO_*``)."""

    model_config = SettingsConfigDict(env_prefix="OSSO_", extra="ignore")

    data_dir: Path = Path("var")
    #: Key that signs and checks bearer tokens (JWT, HS256), shared by every service.
    #: Empty means: read or create ``<data_dir>/keys/jwt-secret`` (development only).
    jwt_secret: str = ""


class ServiceSettings(BaseSettings):
    """Base of each service's settings; subclasses set ``env_prefix`` to ``OSSO_<NAME>_``."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = "127.0.0.1"
    port: int = 0
    #: Processes serving this service on its one port (uvicorn workers). Each is a full replica:
    #: its own consumers on the shared durable consumers, its own outbox relay. On SQLite their
    #: writes still take turns on the one file; on PostgreSQL they scale with the cores.
    workers: int = Field(default=1, ge=1, le=64)
    #: SQLAlchemy async URL; empty means a SQLite file under the data dir.
    database_url: str = ""

    bus: BusSettings = Field(default_factory=BusSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    platform: PlatformSettings = Field(default_factory=PlatformSettings)

    def resolved_database_url(self, service: str) -> str:
        """The configured URL, or ``sqlite+aiosqlite:///<data_dir>/<service>.db``."""
        if self.database_url:
            return self.database_url
        path = (self.platform.data_dir / f"{service}.db").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{path}"
