"""Stand-ins for notification's neighbours, served over real HTTP on a free port: an SMS gateway
that can be told to fail, hang or answer slowly, and intake's contact endpoint."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.natsserver import free_port

API_KEY = "test-gateway-key"


@dataclass
class Gateway:
    """Behaviours are taken one per request from ``script`` (then ``default``): ``ok``, ``fail``
    (500), ``busy`` (429), ``reject`` (400), ``hang`` (answers after ``hang_seconds``, having
    accepted nothing), ``accept_then_hang`` (accepts, then answers too late), ``slow`` (accepts
    after ``slow_seconds``)."""

    script: list[str] = field(default_factory=list)
    default: str = "ok"
    hang_seconds: float = 3.0
    slow_seconds: float = 0.3
    requests: int = 0
    accepted: Counter[str] = field(default_factory=Counter)  # message id -> times handed to the network
    bodies: list[dict] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: Request) -> JSONResponse:
        self.requests += 1
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse({"error": "unauthorized"}, 401)
        key = request.headers.get("idempotency-key", "")
        body = await request.json()
        behaviour = self.script.pop(0) if self.script else self.default
        if behaviour == "fail":
            return JSONResponse({"error": "boom"}, 500)
        if behaviour == "busy":
            return JSONResponse({"error": "slow down"}, 429, headers={"retry-after": "0"})
        if behaviour == "reject":
            return JSONResponse({"error": "invalid number"}, 400)
        if behaviour == "hang":
            await asyncio.sleep(self.hang_seconds)
            return JSONResponse({"error": "late"}, 504)
        if key in self.accepted:
            return JSONResponse({"id": f"gw-{key}", "duplicate": True}, 409)
        if behaviour == "slow":
            await asyncio.sleep(self.slow_seconds)
        self.accepted[key] += 1
        self.bodies.append(body)
        if behaviour == "accept_then_hang":
            await asyncio.sleep(self.hang_seconds)
        return JSONResponse({"id": f"gw-{key}"}, 202)


@dataclass
class Intake:
    """Intake's ``GET /internal/v1/cases/{id}/contact``: a phone for every case unless told otherwise."""

    phones: dict[str, str] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    no_consent: set[str] = field(default_factory=set)
    default_phone: str = "+84912345678"
    reads: Counter[str] = field(default_factory=Counter)
    url: str = ""

    async def handle(self, request: Request) -> JSONResponse:
        case_id = request.path_params["case_id"]
        self.reads[case_id] += 1
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return JSONResponse({"title": "Unauthorized"}, 401)
        if case_id in self.gone:
            return JSONResponse({"title": "Gone"}, 410)
        return JSONResponse(
            {
                "case_id": case_id,
                "phone": self.phones.get(case_id, self.default_phone),
                "sms_consent": case_id not in self.no_consent,
                "status": "open",
            }
        )


@contextlib.asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in this event loop on a free port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 5)


@contextlib.asynccontextmanager
async def gateway(**kw: object) -> AsyncIterator[Gateway]:
    gw = Gateway(**kw)  # type: ignore[arg-type]
    async with serve(Starlette(routes=[Route("/sms", gw.handle, methods=["POST"])])) as url:
        gw.url = url + "/sms"
        yield gw


@contextlib.asynccontextmanager
async def intake(**kw: object) -> AsyncIterator[Intake]:
    fake = Intake(**kw)  # type: ignore[arg-type]
    routes = [Route("/internal/v1/cases/{case_id}/contact", fake.handle, methods=["GET"])]
    async with serve(Starlette(routes=routes)) as url:
        fake.url = url
        yield fake


def intake_app() -> Starlette:
    """Intake's contact endpoint as an ASGI app of its own (``uvicorn --factory``), for the benchmark."""
    fake = Intake()
    return Starlette(routes=[Route("/internal/v1/cases/{case_id}/contact", fake.handle, methods=["GET"])])
