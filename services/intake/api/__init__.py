"""Intake's HTTP routes: caseworkers register and read cases; services read contact data, audited."""

from __future__ import annotations

from fastapi import APIRouter

from services.intake.api import activities, audit, cases, internal
from services.intake.protect import Protector
from shared.runtime import Runtime


def build_router(rt: Runtime, protector: Protector) -> APIRouter:
    router = APIRouter()
    router.include_router(cases.build_router(rt, protector))
    router.include_router(activities.build_router(rt))
    router.include_router(audit.build_router(rt, protector))
    router.include_router(internal.build_router(rt, protector))
    return router
