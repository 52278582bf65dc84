"""Prometheus metrics of the plumbing. Labels are service, consumer and outcome names only."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "osso_events_consumed_total",
    "Events taken from JetStream by a consumer, by outcome",
    ["service", "consumer", "outcome"],  # applied | duplicate | failed | dead_lettered
)
EVENTS_PUBLISHED = Counter(
    "osso_events_published_total", "Outbox events acknowledged by JetStream", ["service"]
)
OUTBOX_LEADER = Gauge(
    "osso_outbox_relay_leader", "1 if this process's outbox relay holds the lease and publishes", ["service"]
)
OUTBOX_PENDING = Gauge("osso_outbox_pending", "Outbox rows not yet acknowledged by JetStream", ["service"])
DEAD_LETTERS = Counter("osso_dead_letters_total", "Messages moved to the dead-letter stream", ["service"])
BATCH_SECONDS = Histogram(
    "osso_consumer_batch_seconds",
    "Seconds to apply one fetched batch, commit and ack",
    ["service", "consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
GROUP_COMMIT_SIZE = Histogram(
    "osso_group_commit_items",
    "Requests written by one group-commit transaction (1 when unloaded, more under load)",
    ["service", "writer"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
