"""Builds the intake process: wiring only."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.intake import api, handlers
from services.intake.limits import BodySizeLimit
from services.intake.protect import Protector
from services.intake.settings import IntakeSettings
from services.intake.store import metadata
from shared.migrations import migrator
from shared.runtime import Runtime, create_http_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    rt = Runtime("intake", settings, metadata, migrate=migrator(MIGRATIONS))
    rt.include(handlers.build_router(rt))
    app = create_http_app(rt, [api.build_router(rt, Protector(settings))], title="OSSO intake")
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
