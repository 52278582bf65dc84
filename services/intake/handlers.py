"""Intake's event subscribers. The walking skeleton consumes nothing yet: intake is the source."""

from __future__ import annotations

from faststream.nats import NatsRouter

from shared.runtime import Runtime


def build_router(rt: Runtime) -> NatsRouter:
    return NatsRouter()
