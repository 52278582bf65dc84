"""Example: a partner system reading its OSSO referral events from NATS JetStream.

Uses only the public libraries `nats-py` and the official CloudEvents SDK (`cloudevents`), no OSSO
code, so a partner's developers can copy it:

    pip install nats-py cloudevents
    python subscriber.py --url nats://nats.osso.example:4222 --partner-id hn-legal-aid \
        --user partner-hn-legal-aid --password '...'

What OSSO ops give a partner: the server URL, a user and password, its partner id. Its user may
only pull from its own durable consumer ``partner-<id>`` on stream ``OSSO_REFERRAL`` (events on
``osso.referral.<id>.>``), ack what it processed, and use reply inboxes under
``_INBOX_partner-<id>``. Events are CloudEvents 1.0 in binary mode: ``ce-*`` headers, JSON body.
They carry pseudonymous ids and codes only; her details are read, once accepted, from the
referral API (``GET /v1/referrals/{id}/her-details``), never from the bus.

Prints one JSON line per event and acks it; stops after ``--count`` events or ``--idle`` seconds
without any.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import nats
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from nats.errors import TimeoutError as NatsTimeout

STREAM = "OSSO_REFERRAL"


def handle(event_type: str, event_id: str, data: dict) -> dict:
    """Your integration goes here: e.g. create a ticket when a referral is requested."""
    return {"type": event_type, "id": event_id, "referral_id": data.get("referral_id"), "data": data}


async def run(args: argparse.Namespace) -> int:
    inbox = f"_INBOX_partner-{args.partner_id}"
    nc = await nats.connect(
        args.url, user=args.user, password=args.password, inbox_prefix=inbox, max_reconnect_attempts=3
    )
    js = nc.jetstream()
    # Bind to the consumer ops created for us (we may not create consumers ourselves).
    sub = await js.pull_subscribe_bind(
        durable=f"partner-{args.partner_id}", stream=STREAM, inbox_prefix=(inbox + ".").encode()
    )
    seen = 0
    try:
        while args.count == 0 or seen < args.count:
            try:
                msgs = await sub.fetch(batch=10, timeout=args.idle)
            except NatsTimeout:
                break
            for msg in msgs:
                headers = {
                    k.lower(): v
                    for k, v in (msg.headers or {}).items()
                    if k.lower().startswith("ce-") or k.lower() == "content-type"
                }
                event = from_http_event(HTTPMessage(headers=headers, body=msg.data))
                data = event.get_data()
                if isinstance(data, (bytes, str)):
                    data = json.loads(data)
                line = handle(event.get_type(), event.get_id(), data or {})
                line["nats_subject"] = msg.subject
                print(json.dumps(line, ensure_ascii=False), flush=True)
                await msg.ack()
                seen += 1
    finally:
        await nc.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("--partner-id", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--count", type=int, default=0, help="stop after this many events (0: no limit)")
    parser.add_argument("--idle", type=float, default=5.0, help="stop after this many seconds without events")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
