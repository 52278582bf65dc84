"""What every service process runs besides its own code: database, NATS connections, outbox
relay, dead-letterer, FastStream broker and the HTTP app with health, readiness and metrics.

A service's ``app.py`` only wires: ``Runtime(name, settings, metadata)`` + its routers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import nats
from fastapi import APIRouter, FastAPI
from faststream import Context
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsRouter, PullSub
from faststream.nats.message import NatsBatchMessage
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared import compat
from shared.auth import Role, mint_token
from shared.consumer import Apply, BatchApply, Decode, EventConsumer
from shared.crypto import ensure_secret_file
from shared.db import (
    create_schema,
    make_engine,
    make_read_engine,
    make_sessionmaker,
    ping,
    plumbing_tables,
    refresh_sqlite_statistics,
)
from shared.deadletter import DeadLetterer
from shared.envelope import decode
from shared.http import install_problem_handlers, metrics_response, problem
from shared.lease import relay_lease
from shared.logs import configure_logging, get_logger
from shared.natsserver import die_with_parent
from shared.outbox import OutboxRelay
from shared.settings import ServiceSettings
from shared.telemetry import configure_tracing
from shared.uow import UnitOfWork

log = get_logger(__name__)
compat.apply()

#: Net container allocations between young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000
_heap_settled = False


def settle_heap() -> None:
    """Once per process, when start-up is done: collect, then freeze what start-up built (modules,
    app, settings: objects that live as long as the process) out of the cyclic collector's walks,
    and collect the young generation every 10,000 net allocations instead of 700.

    A registration keeps ~180 containers alive at a time, and 32 requests in flight kept crossing 700: 260
    young collections per 1,000 registrations, each promoting the in-flight objects, which
    triggered a full collection (~0.1 s over the start-up heap) every ~500 registrations. The
    collector took 0.33-0.41 ms of each registration's 2.9-4 ms of intake CPU; after this,
    0.01-0.02 ms. Later starts in the same process (tests) change nothing."""
    global _heap_settled
    if _heap_settled:
        return
    _heap_settled = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


class Runtime:
    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        metadata: MetaData,
        migrate: Callable[[AsyncEngine], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.metadata = metadata
        compat.apply(settings.bus.idle_poll)
        if settings.workers > 1:
            die_with_parent()  # a worker: go when the supervisor goes, even if it was killed -9
        #: How the schema is brought up to date at start: ``metadata.create_all`` unless the service
        #: has migrations (e.g. ``shared.migrations.migrator(...)``).
        self.migrate = migrate
        self.tables = plumbing_tables(metadata)
        self.database_url = settings.resolved_database_url(name)
        self.engine = make_engine(self.database_url)
        self.sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(self.engine)
        #: Sessions for reads that write nothing (reports, lists): on SQLite their own read-only
        #: connections, which run beside the writer; on PostgreSQL the same pool.
        self._read_engine = make_read_engine(self.database_url)
        self.read_sessions: async_sessionmaker[AsyncSession] = (
            make_sessionmaker(self._read_engine) if self._read_engine else self.sessions
        )
        self.jwt_secret = settings.platform.jwt_secret or ensure_secret_file(
            settings.platform.data_dir / "keys" / "jwt-secret"
        )
        #: Tracing off (the default) costs nothing per request or message: no instrumentation at all.
        self.tracing = settings.observability.otel_exporter != "none"
        self.broker = NatsBroker(
            settings.bus.nats_servers,
            middlewares=[NatsTelemetryMiddleware()] if self.tracing else [],
            # Warnings and errors only: per-message logs cost a third of throughput (ARCHITECTURE.md).
            logger=logging.getLogger("faststream"),
            max_reconnect_attempts=-1,
        )
        self.consumers: dict[str, str] = {}  # durable name -> stream, for dead-lettering
        self.nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._relay: OutboxRelay | None = None
        self._deadletters: DeadLetterer | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._background: list[Callable[[], Any]] = []
        self._startup: list[Callable[[], Any]] = []

    def service_token(self) -> str:
        """A bearer token this service presents to another for an internal, audited read."""
        return mint_token(self.jwt_secret, subject=self.name, role=Role.SERVICE, ttl=365 * 24 * 3600)

    # -- wiring used by handlers.py ------------------------------------------------------------
    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, self.tables, on_commit=self._wake_relay)

    def pull_sub(self) -> PullSub[Any]:
        bus = self.settings.bus
        return PullSub(batch_size=bus.batch_size, timeout=bus.batch_timeout, batch=True)

    def consumer_config(self, durable: str, stream: str) -> ConsumerConfig:
        """A durable pull consumer with explicit acks and a delivery limit (never unlimited)."""
        self.consumers[durable] = stream
        bus = self.settings.bus
        return ConsumerConfig(
            durable_name=durable,
            ack_policy=JsAckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            max_deliver=bus.max_deliver,
            ack_wait=bus.ack_wait,
            max_ack_pending=max(1000, bus.batch_size * 10),
        )

    def event_consumer(
        self,
        durable: str,
        stream: str,
        apply: Apply | None = None,
        *,
        apply_batch: BatchApply | None = None,
        decoder: Decode = decode,
    ) -> EventConsumer:
        """The idempotent consumer of one durable: per-event ``apply`` or whole-batch ``apply_batch``."""
        return EventConsumer(self, durable, stream, apply, apply_batch=apply_batch, decoder=decoder)

    def subscribe(
        self,
        router: NatsRouter,
        subject: str,
        consumer: EventConsumer,
        description: str,
        *,
        name: str | None = None,
    ) -> None:
        """Feed ``subject`` to ``consumer`` through its durable pull consumer on its stream; the
        consumer acks each message after its transaction commits. ``name`` names the handler in
        the AsyncAPI document (default ``on_<durable>``)."""

        async def handle(msg: NatsBatchMessage = Context("message")) -> None:
            await consumer.process(msg.raw_message)

        handle.__name__ = handle.__qualname__ = name or "on_" + consumer.durable.replace("-", "_")
        router.subscriber(
            subject,
            stream=JStream(consumer.stream, declare=False),
            durable=consumer.durable,
            config=self.consumer_config(consumer.durable, consumer.stream),
            pull_sub=self.pull_sub(),
            ack_policy=AckPolicy.MANUAL,
            description=description,
        )(handle)

    def include(self, router: NatsRouter) -> None:
        self.broker.include_router(router)

    def add_startup(self, factory: Callable[[], Any]) -> None:
        """Await ``factory()`` once the schema exists, before consumers start."""
        self._startup.append(factory)

    def add_background(self, factory: Callable[[], Any]) -> None:
        """Run ``factory()`` (a coroutine) as a task for the life of the process."""
        self._background.append(factory)

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "runtime not started"
        return self._js

    @property
    def deadletters(self) -> DeadLetterer:
        assert self._deadletters is not None, "runtime not started"
        return self._deadletters

    @property
    def relay(self) -> OutboxRelay:
        assert self._relay is not None, "runtime not started"
        return self._relay

    async def _refresh_statistics(self, every: float = 600.0) -> None:
        """Keep SQLite's planner statistics current as the tables grow (every ten minutes)."""
        while True:
            await asyncio.sleep(every)
            try:
                await refresh_sqlite_statistics(self.engine)
            except Exception as exc:  # a busy database: try again next time
                log.warning("analyze_failed", error=type(exc).__name__)

    def _wake_relay(self) -> None:
        if self._relay is not None:
            self._relay.wake()

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.migrate is not None:
            await self.migrate(self.engine)
        else:
            await create_schema(self.engine, self.metadata)
        if self.engine.dialect.name == "sqlite":  # PostgreSQL's autovacuum keeps its own statistics
            await refresh_sqlite_statistics(self.engine)
            self._tasks.append(asyncio.create_task(self._refresh_statistics(), name=f"{self.name}-analyze"))
        for startup in self._startup:
            await startup()
        self.nc = await nats.connect(
            servers=self.settings.bus.nats_servers, max_reconnect_attempts=-1, name=f"osso-{self.name}"
        )
        self._js = self.nc.jetstream()
        self._relay = OutboxRelay(
            self.name,
            self.sessions,
            self.tables,
            self._js,
            poll_interval=self.settings.bus.outbox_poll_interval,
            lease=relay_lease(self.engine.url, self.name),
        )
        self._deadletters = DeadLetterer(self.name, self._js, self.sessions, self.tables)
        self._tasks.append(asyncio.create_task(self._relay.run(), name=f"{self.name}-outbox"))
        await self.broker.start()
        self._tasks.append(
            asyncio.create_task(self._deadletters.run(dict(self.consumers)), name=f"{self.name}-dlq")
        )
        for factory in self._background:
            self._tasks.append(asyncio.create_task(factory()))
        settle_heap()
        log.info("service_started", nats=[u.split("@")[-1] for u in self.settings.bus.nats_servers])

    async def stop(self) -> None:
        await self.broker.stop()
        if self._relay is not None:
            self._relay.stop()
            with contextlib.suppress(Exception):
                await self._relay.drain(timeout=2.0)
        if self._deadletters is not None:
            self._deadletters.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        if self.nc is not None:
            # close, not drain: every publish was already acked, and drain waits out idle pull requests.
            with contextlib.suppress(Exception):
                await self.nc.close()
        await self.engine.dispose()
        if self._read_engine is not None:
            await self._read_engine.dispose()

    async def ready(self) -> dict[str, str]:
        checks = {}
        try:
            await ping(self.engine)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        checks["nats"] = "ok" if self.nc is not None and self.nc.is_connected else "error: not connected"
        return checks


def create_http_app(rt: Runtime, routers: Iterable[APIRouter], *, title: str, version: str = "1") -> FastAPI:
    """The service's FastAPI app: its routes plus ``/healthz``, ``/readyz`` and ``/metrics``."""
    configure_logging(rt.name, rt.settings.observability.log_level, rt.settings.observability.log_format)
    configure_tracing(rt.name, rt.settings.observability)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await rt.start()
        try:
            yield
        finally:
            await rt.stop()

    # FastAPI's own OpenTelemetry support is off: tracing is the OpenTelemetry instrumentor's (below,
    # only when an exporter is configured). Left on, it looked up the global providers, reading the
    # environment, on every request: 3 % of a registration's CPU.
    app = FastAPI(
        title=title,
        version=version,
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = rt
    install_problem_handlers(app)
    for router in routers:
        app.include_router(router)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": rt.name}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> Any:
        checks = await rt.ready()
        if all(v == "ok" for v in checks.values()):
            return {"status": "ready", **checks}
        return problem(503, "Not ready", ", ".join(f"{k}: {v}" for k, v in checks.items()), checks=checks)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def metrics() -> Any:
        return metrics_response()

    if rt.tracing:
        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    return app


def serve(factory: str, settings: ServiceSettings) -> None:
    """Run a service with uvicorn on the configured host and port. ``factory`` is
    ``"services.<name>.app:create_app"``, called with ``settings`` in this process, or, with
    ``workers`` > 1, with no argument in each worker process (it then reads the same environment)."""
    import importlib

    import uvicorn

    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
    }
    if settings.workers > 1:
        uvicorn.run(factory, factory=True, workers=settings.workers, **common)
        return
    module, name = factory.split(":")
    app = getattr(importlib.import_module(module), name)(settings)
    uvicorn.run(app, **common)
