"""Partner systems on NATS: a real nats-server started with the generated per-partner users shows
partner A receiving its own referral events and refused partner B's (pull, subscribe, stream read,
consumer creation, publishing), and the example subscriber (plain nats-py + cloudevents) works."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeout

from deploy.runner import provision_streams
from services.referral.natsaccess import ensure_partner_consumer, inbox_prefix, render_authorization
from shared.envelope import encode
from shared.events import Event, NeedUnmatched, ReferralAccepted, ReferralRequested
from shared.natsserver import NatsServer
from shared.vocab import ServiceCategory

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "partner_subscriber" / "subscriber.py"
A, B = "hn-legal-aid", "hp-legal-aid"
PASSWORDS = {A: "a-secret-pw", B: "b-secret-pw"}
SERVICE_PASSWORD = "service-secret-pw"


@dataclass
class SecuredNats:
    server: NatsServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def service_url(self) -> str:
        return f"nats://osso:{SERVICE_PASSWORD}@127.0.0.1:{self.server.port}"


@pytest.fixture
def secured_nats(tmp_path: Path) -> Iterator[SecuredNats]:
    (tmp_path / "auth.conf").write_text(render_authorization(PASSWORDS, SERVICE_PASSWORD))
    (tmp_path / "nats.conf").write_text(
        (REPO / "deploy" / "nats" / "nats-server.conf")
        .read_text()
        .replace("port: 4222\n", "")
        .replace('store_dir: "var/nats"', f'store_dir: "{tmp_path / "js"}"')
    )
    server = NatsServer(
        tmp_path / "js", config_file=tmp_path / "nats.conf", log_file=tmp_path / "nats.log"
    ).start()
    asyncio.run(provision_streams(f"nats://osso:{SERVICE_PASSWORD}@127.0.0.1:{server.port}"))
    yield SecuredNats(server)
    server.stop()


def requested(partner_id: str) -> ReferralRequested:
    return ReferralRequested(
        referral_id=str(uuid.uuid4()),
        case_id=str(uuid.uuid4()),
        partner_id=partner_id,
        province="01" if partner_id == A else "31",
        category=ServiceCategory.LEGAL,
        requested_at=datetime.now(UTC),
    )


async def publish_all(url: str, *events: Event) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=1.0)  # refused requests get no reply: do not wait 5 s each
        for pid in PASSWORDS:
            await ensure_partner_consumer(js, pid)
        for e in events:
            m = encode(e)
            await js.publish(m.subject, m.body, headers=m.headers)
    finally:
        await nc.close()


async def test_partner_a_receives_its_events_and_is_refused_b_s(secured_nats: SecuredNats) -> None:
    a1 = requested(A)
    a2 = ReferralAccepted(
        **a1.model_dump(include={"referral_id", "case_id", "partner_id", "province", "category"}),
        at=datetime.now(UTC),
    )
    b1 = requested(B)
    unmatched = NeedUnmatched(
        case_id="c",
        province="01",
        category=ServiceCategory.CHILDREN,
        reason="no_partner_available",
        at=datetime.now(UTC),
    )
    await publish_all(secured_nats.service_url, a1, b1, a2, unmatched)

    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    # Wrong password: no connection at all.
    with pytest.raises(Exception):  # noqa: B017
        await nats.connect(
            secured_nats.url,
            user=f"partner-{A}",
            password="wrong",
            max_reconnect_attempts=0,
            allow_reconnect=False,
        )

    nc = await nats.connect(
        secured_nats.url,
        user=f"partner-{A}",
        password=PASSWORDS[A],
        inbox_prefix=inbox_prefix(A),
        error_cb=on_error,
    )
    try:
        js = nc.jetstream(timeout=1.0)  # refused requests get no reply: do not wait 5 s each
        mine = await js.pull_subscribe_bind(
            durable=f"partner-{A}", stream="OSSO_REFERRAL", inbox_prefix=f"{inbox_prefix(A)}.".encode()
        )
        got = []
        while len(got) < 2:
            got += await mine.fetch(batch=10, timeout=5)
        assert [m.subject for m in got] == [f"osso.referral.{A}.requested", f"osso.referral.{A}.accepted"]
        assert [m.headers["ce-id"] for m in got if m.headers] and all(
            m.headers and m.headers["ce-type"].startswith("vn.osso.referral.") for m in got
        )
        for m in got:
            await m.ack()
        with pytest.raises(NatsTimeout):
            await mine.fetch(batch=1, timeout=0.5)  # nothing else: not B's, not the unmatched need

        # Live events on its own subjects (core NATS) work...
        live = await nc.subscribe(f"osso.referral.{A}.>")
        await nc.flush()
        a3 = requested(A)
        await publish_all(secured_nats.service_url, a3)
        msg = await live.next_msg(timeout=5)
        assert msg.subject == f"osso.referral.{A}.requested" and msg.headers and msg.headers["ce-id"]

        # ...but everything of B's is refused.
        theirs = await js.pull_subscribe_bind(
            durable=f"partner-{B}", stream="OSSO_REFERRAL", inbox_prefix=f"{inbox_prefix(A)}.".encode()
        )
        with pytest.raises(NatsTimeout):
            await theirs.fetch(batch=1, timeout=1)
        await nc.subscribe(f"osso.referral.{B}.>")
        await nc.subscribe("osso.referral.>")
        await nc.subscribe(f"{inbox_prefix(B)}.>")
        await nc.publish(f"osso.referral.{A}.completed", b"{}")  # a partner publishes no events
        with pytest.raises(Exception):  # noqa: B017 - the request is refused: no reply comes
            await js.get_msg("OSSO_REFERRAL", 1)
        with pytest.raises(Exception):  # noqa: B017
            await js.add_consumer("OSSO_REFERRAL", durable_name="sneaky", filter_subject="osso.referral.>")
        await nc.flush()
        await asyncio.sleep(0.3)
    finally:
        await nc.close()

    refused = "\n".join(errors)
    for what in (
        f'Publish to "$JS.API.CONSUMER.MSG.NEXT.OSSO_REFERRAL.partner-{B}"',
        f'Subscription to "osso.referral.{B}.>"',
        'Subscription to "osso.referral.>"',
        f'Subscription to "{inbox_prefix(B)}.>"',
        f'Publish to "osso.referral.{A}.completed"',
        'Publish to "$JS.API.STREAM.MSG.GET.OSSO_REFERRAL"',
        'Publish to "$JS.API.CONSUMER.DURABLE.CREATE.OSSO_REFERRAL.sneaky"',
    ):
        # nats-py lower-cases the server's -ERR text.
        assert f"permissions violation for {what}".lower() in refused.lower(), (
            f"{what} not refused:\n{refused}"
        )

    # The server really stored only the service's publications: A's "completed" never reached the stream.
    svc = await nats.connect(secured_nats.service_url)
    try:
        info = await svc.jetstream().stream_info("OSSO_REFERRAL")
        assert info.state.messages == 5
    finally:
        await svc.close()


def test_example_subscriber_reads_only_its_partners_events(secured_nats: SecuredNats) -> None:
    a1, b1, b2 = requested(A), requested(B), requested(B)
    asyncio.run(publish_all(secured_nats.service_url, a1, b1, b2))
    out = subprocess.run(
        [
            sys.executable, str(EXAMPLE), "--url", secured_nats.url, "--partner-id", B, "--user", f"partner-{B}",
            "--password", PASSWORDS[B], "--count", "2", "--idle", "10",
        ],
        capture_output=True, text=True, timeout=60, check=False, cwd=EXAMPLE.parent,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [x["referral_id"] for x in lines] == [b1.referral_id, b2.referral_id]
    assert {x["type"] for x in lines} == {"vn.osso.referral.requested.v1"}
    assert {x["nats_subject"] for x in lines} == {f"osso.referral.{B}.requested"}
    # Acked: running it again finds nothing new for B.
    again = subprocess.run(
        [sys.executable, str(EXAMPLE), "--url", secured_nats.url, "--partner-id", B, "--user", f"partner-{B}", "--password", PASSWORDS[B], "--idle", "1"],
        capture_output=True, text=True, timeout=60, check=False, cwd=EXAMPLE.parent,
    )  # fmt: skip
    assert again.returncode == 0 and again.stdout == "", again.stderr


def test_example_imports_no_osso_code() -> None:
    source = EXAMPLE.read_text()
    assert "import nats" in source and "from cloudevents" in source
    for ours in ("shared", "services", "deploy"):
        assert f"from {ours}" not in source and f"import {ours}" not in source
