"""Builds the notification process: wiring only. Plans and templates are validated here, at
start: a bad file stops the service with an error naming the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from services.notification import api, handlers
from services.notification.dispatcher import Dispatcher, IntakeContacts, system_clock
from services.notification.plans import load_plans
from services.notification.providers import (
    CircuitBreaker,
    FileProvider,
    HttpProvider,
    RateLimiter,
    SmsProvider,
)
from services.notification.settings import NotificationSettings
from services.notification.store import metadata
from services.notification.templates import Templates
from services.notification.webhooks import WebhookAuth
from shared.crypto import BlindIndex, ensure_secret_file
from shared.migrations import migrator
from shared.runtime import Runtime, create_http_app

MIGRATIONS = Path(__file__).parent / "migrations"


def make_provider(settings: NotificationSettings) -> SmsProvider:
    if settings.provider == "http":
        return HttpProvider(
            settings.http_url,
            settings.http_api_key,
            timeout=settings.http_timeout,
            attempts=settings.http_attempts,
            backoff=settings.http_backoff,
            breaker=CircuitBreaker(settings.circuit_failures, settings.circuit_reset),
            limiter=RateLimiter(settings.rate_limit),
        )
    outbox_file = settings.outbox_file or settings.platform.data_dir / "notification" / "sms-outbox.jsonl"
    return FileProvider(outbox_file)


def secret(settings: NotificationSettings, value: str, name: str) -> str:
    """A configured secret, or a development one kept under ``<data_dir>/keys/``."""
    return value or ensure_secret_file(settings.platform.data_dir / "keys" / name)


def create_app(settings: NotificationSettings | None = None) -> FastAPI:
    settings = settings or NotificationSettings()
    templates = Templates.load(settings.template_file)
    plans = load_plans(settings.plan_file, templates=set(templates.names))
    if settings.checkin_delay is not None:  # the walking skeleton's knob still works
        plans = plans.model_copy(
            update={
                "follow_up": [
                    r.model_copy(update={"after": timedelta(seconds=settings.checkin_delay)})
                    if r.on == "referral.requested"
                    else r
                    for r in plans.follow_up
                ]
            }
        )
    rt = Runtime("notification", settings, metadata, migrate=migrator(MIGRATIONS))
    clock = system_clock(settings.clock_offset)
    phone_index = BlindIndex(
        secret(settings, settings.phone_hash_key, "notification-phone-hash-key").encode()
    )
    webhook_auth = WebhookAuth(secret(settings, settings.webhook_secret, "notification-webhook-secret"))
    dispatcher = Dispatcher(
        rt,
        settings,
        make_provider(settings),
        IntakeContacts(settings.intake_url, rt.service_token()),
        templates,
        phone_index,
        clock=clock,
    )
    rt.add_background(dispatcher.run)
    rt.include(handlers.build_router(rt, handlers.FollowUpPlanner(plans, settings, clock)))
    return create_http_app(
        rt, [api.build_router(rt, webhook_auth, phone_index, clock)], title="OSSO notification"
    )
