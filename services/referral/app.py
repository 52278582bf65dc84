"""Builds the referral process: wiring only."""

from __future__ import annotations

from fastapi import FastAPI

from services.referral import api, handlers
from services.referral.directory import load_directory
from services.referral.settings import ReferralSettings
from services.referral.store import metadata
from shared.runtime import Runtime, create_http_app


def create_app(settings: ReferralSettings | None = None) -> FastAPI:
    settings = settings or ReferralSettings()
    rt = Runtime("referral", settings, metadata)
    if settings.seed_file:
        seed = settings.seed_file
        rt.add_startup(lambda: load_directory(rt, seed))
    rt.include(handlers.build_router(rt))
    return create_http_app(rt, [api.build_router(rt)], title="OSSO referral")
