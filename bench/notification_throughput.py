"""Scheduled messages processed per second by notification's dispatcher through the ``file`` provider.

Each run writes ``--messages`` due follow-ups (and their cases' contact profiles) to a fresh SQLite
database, then times one dispatcher sending them all: claim in batches (marked ``sending`` with a
lease), her number looked up, template rendered, segments counted, number hashed, line appended
to the SMS file, outcome and ``MessageSent`` event recorded in one transaction per batch.

Two contact sources: ``inproc`` (a stub in this process: the dispatcher's own cost) and ``http``
(a stand-in of intake's contact endpoint in another process, over real HTTP, as in production). Prints the
median (and min/max) over ``--runs`` runs. Usage:
    .venv/bin/python bench/notification_throughput.py [--messages 5000] [--runs 3] [--contacts inproc|http|both]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from services.notification.dispatcher import Contact, ContactSource, Dispatcher, IntakeContacts  # noqa: E402
from services.notification.providers import FileProvider  # noqa: E402
from services.notification.settings import NotificationSettings  # noqa: E402
from services.notification.store import ContactProfileRow, FollowUpRow, metadata  # noqa: E402
from services.notification.templates import default_templates  # noqa: E402
from shared.crypto import BlindIndex  # noqa: E402
from shared.db import create_schema  # noqa: E402
from shared.natsserver import free_port, port_open  # noqa: E402
from shared.runtime import Runtime  # noqa: E402
from shared.settings import PlatformSettings  # noqa: E402


class StubContacts(ContactSource):
    async def get(self, case_id: str, purpose: str) -> Contact:
        return Contact("+84912345678", True, "open")


async def one_run(n: int, contacts: str, tmp: Path) -> float:
    settings = NotificationSettings(
        database_url=f"sqlite+aiosqlite:///{tmp / 'notification.db'}",
        platform=PlatformSettings(data_dir=tmp),
        quiet_hours_enabled=False,
        dispatch_batch=200,
        send_concurrency=16,
    )
    rt = Runtime("notification", settings, metadata)
    await create_schema(rt.engine, metadata)
    now = datetime.now(UTC)
    cases = [str(uuid.uuid4()) for _ in range(n // 2)]
    async with rt.sessions() as s, s.begin():
        s.add_all(ContactProfileRow(case_id=c, province="01", sms_consent=True, opened=True) for c in cases)
        s.add_all(
            FollowUpRow(
                id=str(uuid.uuid4()),
                case_id=cases[i % len(cases)],
                province="01",
                referral_id=str(uuid.uuid4()),
                template=("referral_checkin", "completion_follow_up")[i % 2],
                due_at=now - timedelta(seconds=1),
            )
            for i in range(n)
        )
    intake_process = None
    if contacts == "http":
        # A stand-in of intake's contact endpoint in a process of its own, as in production.
        port = free_port()
        intake_process = subprocess.Popen(  # noqa: ASYNC220 - before the timed part
            [sys.executable, "-m", "uvicorn", "--factory", "tests.integration.notification_fakes:intake_app",
             "--port", str(port), "--log-level", "warning", "--no-access-log"],
            cwd=REPO,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        while not port_open(port):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        source: ContactSource = IntakeContacts(url, "bench-token")
    else:
        source = StubContacts()
    d = Dispatcher(
        rt,
        settings,
        FileProvider(tmp / "sms-outbox.jsonl"),
        source,
        default_templates(),
        BlindIndex(b"bench-phone-hash-key-0123456789"),
    )
    started = time.perf_counter()
    while await d.dispatch_due():
        pass
    elapsed = time.perf_counter() - started
    async with rt.sessions() as s:
        from sqlalchemy import func, select

        sent = (await s.execute(select(func.count()).where(FollowUpRow.status == "sent"))).scalar()
    lines = sum(1 for _ in (tmp / "sms-outbox.jsonl").open("rb"))
    assert sent == n == lines, (sent, n, lines)
    await d.provider.close()
    await d.contacts.close()
    if intake_process is not None:
        intake_process.terminate()
        intake_process.wait(10)
    await rt.engine.dispose()
    return n / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--contacts", choices=["inproc", "http", "both"], default="both")
    args = parser.parse_args()
    import logging

    import structlog

    logging.disable(logging.INFO)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    modes = ["inproc", "http"] if args.contacts == "both" else [args.contacts]
    for mode in modes:
        rates = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="osso-notif-bench-") as tmp:
                rates.append(await one_run(args.messages, mode, Path(tmp)))
        print(
            f"notification dispatch, file provider, contacts={mode:6}: "
            f"median {statistics.median(rates):,.0f} msg/s "
            f"(min {min(rates):,.0f}, max {max(rates):,.0f}; {args.runs} runs of {args.messages} messages)"
        )


if __name__ == "__main__":
    asyncio.run(main())
