"""Builds the notification process: wiring only."""

from __future__ import annotations

from fastapi import FastAPI

from services.notification import api, handlers
from services.notification.dispatcher import Dispatcher, IntakeContacts
from services.notification.providers import FileProvider
from services.notification.settings import NotificationSettings
from services.notification.store import metadata
from shared.runtime import Runtime, create_http_app


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    settings = settings or NotificationSettings()
    rt = Runtime("notification", settings, metadata)
    outbox_file = settings.outbox_file or settings.platform.data_dir / "notification" / "sms-outbox.jsonl"
    dispatcher = Dispatcher(
        rt, settings, FileProvider(outbox_file), IntakeContacts(settings.intake_url, rt.service_token())
    )
    rt.add_background(dispatcher.run)
    rt.include(handlers.build_router(rt, settings))
    return create_http_app(rt, [api.build_router(rt)], title="OSSO notification")
