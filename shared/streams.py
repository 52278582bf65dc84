"""JetStream streams, declared once by the provisioning step (``osso provision`` or ``osso up``).

Services subscribe with ``declare=False`` so no service can rewrite a stream's configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

MAX_DELIVERIES_ADVISORY = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    description: str
    #: Seconds to keep messages; 0 keeps them until limits are hit (events are the reporting history).
    max_age: float = 0.0


CASE = StreamSpec("OSSO_CASE", ("osso.case.>",), "Case events from intake: osso.case.<province>.<event>")
REFERRAL = StreamSpec(
    "OSSO_REFERRAL", ("osso.referral.>",), "Referral events: osso.referral.<partner_id>.<event>"
)
ACTIVITY = StreamSpec(
    "OSSO_ACTIVITY",
    ("osso.activity.>",),
    "Community activities from intake: osso.activity.<province>.<event>",
)
DIRECTORY = StreamSpec(
    "OSSO_DIRECTORY", ("osso.partner.>",), "Partner directory changes: osso.partner.<partner_id>.<event>"
)
NOTIFICATION = StreamSpec(
    "OSSO_NOTIFICATION", ("osso.notification.>",), "Follow-up messages: osso.notification.<province>.<event>"
)
DLQ = StreamSpec("OSSO_DLQ", ("osso.dlq.>",), "Dead letters: osso.dlq.<service>.<consumer>, with the reason")
# Advisories are core NATS messages: captured in a stream so a dead-letterer that is down
# when a message exhausts its deliveries still sees it when it comes back.
ADVISORIES = StreamSpec(
    "OSSO_ADVISORIES",
    (f"{MAX_DELIVERIES_ADVISORY}.>",),
    "MaxDeliveries advisories, read by each service's dead-letterer",
    max_age=7 * 24 * 3600,
)

ALL_STREAMS = (CASE, ACTIVITY, REFERRAL, DIRECTORY, NOTIFICATION, DLQ, ADVISORIES)
EVENT_STREAMS = (CASE, ACTIVITY, REFERRAL, DIRECTORY, NOTIFICATION)


def stream_config(spec: StreamSpec, *, replicas: int, duplicate_window: float) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=list(spec.subjects),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
        duplicate_window=duplicate_window,
        max_age=spec.max_age,
        allow_direct=True,
    )


def kept_replicas(existing: int, requested: int, *, allow_fewer: bool) -> int:
    """The replica count to apply to an existing stream. A routine re-provision (every ``osso up``,
    every service deployment) must not quietly turn an R3 stream of a cluster into R1: lowering
    replication takes an explicit ``allow_fewer``."""
    return requested if allow_fewer or requested >= existing else existing


async def provision(
    js: JetStreamContext,
    *,
    replicas: int = 1,
    duplicate_window: float = 120.0,
    allow_fewer_replicas: bool = False,
) -> list[str]:
    """Create or update every stream; returns ``"<name>: created|updated (R<n>)"`` lines."""
    report = []
    for spec in ALL_STREAMS:
        try:
            info = await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(stream_config(spec, replicas=replicas, duplicate_window=duplicate_window))
            report.append(f"{spec.name}: created (R{replicas})")
        else:
            n = kept_replicas(info.config.num_replicas or 1, replicas, allow_fewer=allow_fewer_replicas)
            await js.update_stream(stream_config(spec, replicas=n, duplicate_window=duplicate_window))
            report.append(f"{spec.name}: updated (R{n})")
    return report
