"""Builds the intake process: wiring only."""

from __future__ import annotations

from fastapi import FastAPI

from services.intake import api, handlers
from services.intake.protect import Protector
from services.intake.settings import IntakeSettings
from services.intake.store import metadata
from shared.runtime import Runtime, create_http_app


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    rt = Runtime("intake", settings, metadata)
    rt.include(handlers.build_router(rt))
    return create_http_app(rt, [api.build_router(rt, Protector(settings))], title="OSSO intake")
