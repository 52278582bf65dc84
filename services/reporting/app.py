"""Builds the reporting process: wiring only."""

from __future__ import annotations

from fastapi import FastAPI

from services.reporting import api, handlers
from services.reporting.settings import ReportingSettings
from services.reporting.store import metadata
from shared.runtime import Runtime, create_http_app


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    rt = Runtime("reporting", settings, metadata)
    rt.include(handlers.build_router(rt))
    return create_http_app(rt, [api.build_router(rt)], title="OSSO reporting")
