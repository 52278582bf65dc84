"""The local runner behind ``osso up`` / ``make run``: embedded nats-server, streams, four
services as separate processes, the demo partner directory; stops everything on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats

from shared.auth import Role, mint_token
from shared.crypto import ensure_secret_file
from shared.natsserver import NatsServer, die_with_parent, free_port, port_open
from shared.settings import DEFAULT_PORTS, EMBEDDED_NATS_PORT
from shared.streams import provision

SERVICES = ("intake", "referral", "notification", "reporting")
REPO = Path(__file__).resolve().parent.parent
DEMO_PARTNERS = REPO / "deploy" / "demo" / "partners.json"


async def provision_streams(
    url: str, replicas: int = 1, duplicate_window: float = 120.0, allow_fewer_replicas: bool = False
) -> list[str]:
    nc = await nats.connect(servers=url.split(","), connect_timeout=5, max_reconnect_attempts=3)
    try:
        return await provision(
            nc.jetstream(),
            replicas=replicas,
            duplicate_window=duplicate_window,
            allow_fewer_replicas=allow_fewer_replicas,
        )
    finally:
        await nc.close()


def wait_ready(url: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with code {process.returncode}")
        try:
            r = httpx.get(f"{url}/readyz", timeout=1.0)
            if r.status_code == 200:
                return
            last = r.text
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last}")


@dataclass
class Platform:
    """The four services (and, unless a NATS URL is given, an embedded nats-server)."""

    data_dir: Path
    nats_url: str | None = None
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    seed_demo: bool = True
    extra_env: Mapping[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    stream_replicas: int = 1
    nats: NatsServer | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start_nats(self) -> str:
        if self.nats_url:
            return self.nats_url
        port = EMBEDDED_NATS_PORT if not port_open(EMBEDDED_NATS_PORT) else 0
        self.nats = NatsServer(
            self.data_dir / "nats", port=port, log_file=(self.log_dir or self.data_dir) / "nats-server.log"
        ).start()
        self.nats_url = self.nats.url
        return self.nats_url

    def env(self, service: str, port: int | None = None) -> dict[str, str]:
        assert self.nats_url
        env = dict(os.environ)
        env.update(
            {
                "OSSO_NATS_URL": self.nats_url,
                "OSSO_DATA_DIR": str(self.data_dir),
                f"OSSO_{service.upper()}_PORT": str(port or self.ports[service]),
                "OSSO_NOTIFICATION_INTAKE_URL": self.url("intake"),
                "OSSO_REFERRAL_INTAKE_URL": self.url("intake"),
            }
        )
        if self.seed_demo:
            env["OSSO_REFERRAL_SEED_FILE"] = str(DEMO_PARTNERS)
        env.update(self.extra_env)
        return env

    def start_service(self, service: str, wait: bool = True, replica: int = 1) -> subprocess.Popen[bytes]:
        """Start one process of ``service``; replica 2, 3... get their own port and log file
        and share the service's database and durable consumers."""
        name = service if replica == 1 else f"{service}-{replica}"
        if name not in self.ports:
            self.ports = {**self.ports, name: free_port()}
        log_dir = self.log_dir or self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = open(log_dir / f"{name}.log", "ab")  # the child process owns it
        proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            env=self.env(service, self.ports[name]),
            stdout=log,
            stderr=log,
            cwd=REPO,
            preexec_fn=die_with_parent,
        )
        self.processes[name] = proc
        if wait:
            wait_ready(self.url(name), process=proc)
        return proc

    def stop_service(self, service: str, kill: bool = False) -> None:
        """Stop one process by name (``referral``, ``referral-2``...); ``kill`` is ``kill -9``."""
        proc = self.processes.pop(service, None)
        if proc is None or proc.poll() is not None:
            return
        if kill:
            proc.kill()
        else:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def jwt_secret(self) -> str:
        """The development signing key every service of this platform reads (created once)."""
        return ensure_secret_file(self.data_dir / "keys" / "jwt-secret")

    def token(self, role: Role, province: str | None = None, partner_id: str | None = None) -> str:
        return mint_token(
            self.jwt_secret, subject=f"dev-{role.value}", role=role, province=province, partner_id=partner_id
        )

    def start(self, services: tuple[str, ...] = SERVICES) -> Platform:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _ = self.jwt_secret  # before any service starts, so all read the same key
        url = self.start_nats()
        asyncio.run(provision_streams(url, replicas=self.stream_replicas))
        for service in services:
            self.start_service(service, wait=False)
        for service in services:
            wait_ready(self.url(service), process=self.processes[service])
        return self

    def stop(self) -> None:
        for service in list(self.processes):
            self.stop_service(service)
        if self.nats is not None:
            self.nats.stop()
            self.nats = None

    def __enter__(self) -> Platform:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def run_forever(platform: Platform) -> None:
    """Start, print the URLs, and stop cleanly on Ctrl-C or when a service dies."""
    stopping = False

    def _stop(*_args: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        platform.start()
        print(f"NATS:         {platform.nats_url}")
        for service in SERVICES:
            print(f"{service + ':':13} {platform.url(service)}   (docs: {platform.url(service)}/docs)")
        print(f"SMS outbox:   {platform.data_dir / 'notification' / 'sms-outbox.jsonl'}")
        print(f"Logs:         {platform.data_dir / 'logs'}")
        print("Press Ctrl-C to stop.")
        while not stopping:
            for name, proc in platform.processes.items():
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        print("Stopping...")
        platform.stop()


def process_tree(pid: int, workers: bool = True) -> list[int]:
    """``pid`` and (with ``workers``) its child processes: a service's uvicorn workers (Linux)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split() if workers else []
    except OSError:
        children = []
    return [pid, *map(int, children)]


def cpu_seconds(pid: int, workers: bool = True) -> float:
    """User + system CPU of a process so far (with ``workers``, also of its child processes:
    a service's uvicorn workers), from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in process_tree(pid, workers):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total
