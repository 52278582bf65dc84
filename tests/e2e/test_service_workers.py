"""Ops scale one service on one port with ``OSSO_<SERVICE>_WORKERS``: several processes share the
requests, every event still leaves once, and a supervisor killed with -9 takes its workers along
(no orphan keeps the port or the durable consumers)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from shared.natsserver import NatsServer, port_open
from tests.conftest import make_platform
from tests.helpers import all_stream_messages, auth, eventually, new_case

pytestmark = pytest.mark.e2e


def _worker_pids(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(c) for c in children]


def test_intake_with_two_workers_serves_and_dies_with_its_supervisor(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    p = make_platform(tmp_path, nats_server.url, OSSO_INTAKE_WORKERS="2")
    p.start(services=("intake",))
    try:
        supervisor = p.processes["intake"].pid
        workers = eventually(
            lambda: len(_worker_pids(supervisor)) >= 2 and _worker_pids(supervisor), timeout=20
        )
        ids = []
        with httpx.Client(base_url=p.url("intake"), headers=auth(p), timeout=10) as client:
            for i in range(30):
                r = client.post("/v1/cases", json=new_case("01", ("legal",), phone=f"0912 000 {i:03d}"))
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])

        def opened() -> list[str]:
            found = [
                headers["ce-subject"]
                for _subject, headers, _body in asyncio.run(all_stream_messages(nats_server.url))
                if headers.get("ce-type") == "vn.osso.case.opened.v1"
            ]
            assert set(found) >= set(ids)
            return found

        eventually(opened, timeout=20)
        time.sleep(1.0)  # both workers' relays have polled the outbox by now
        assert sorted(opened()) == sorted(ids)  # once each, whichever worker wrote it

        p.processes["intake"].kill()  # the supervisor, as kill -9 would
        p.processes["intake"].wait()
        eventually(lambda: not any(Path(f"/proc/{w}").exists() for w in workers), timeout=20)
        time.sleep(0.2)
        assert not port_open(p.ports["intake"]), "an orphaned worker still holds the port"
    finally:
        p.stop()
