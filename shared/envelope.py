"""CloudEvents 1.0 in binary mode over NATS: ``ce-*`` headers, JSON body.

The CloudEvents id is also the JetStream ``Nats-Msg-Id``, so a re-published event is dropped by the
server's duplicate window, and consumers use the same id to apply an event once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from pydantic import ValidationError

from shared.events import EVENT_TYPES, Event
from shared.ids import new_id

SPECVERSION = "1.0"
MSG_ID_HEADER = "Nats-Msg-Id"
CONTENT_TYPE = "application/json"


class MalformedEvent(ValueError):
    """A message on the bus that is not a valid event of a known type; the text says why."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    subject: str
    headers: dict[str, str]
    body: bytes

    @property
    def event_id(self) -> str:
        return self.headers["ce-id"]


@dataclass(frozen=True, slots=True)
class Envelope:
    id: str
    type: str
    source: str
    time: str
    subject: str
    data: Event


def new_event_id() -> str:
    return new_id()


def encode(event: Event, *, event_id: str | None = None, time: datetime | None = None) -> OutgoingMessage:
    """Wrap ``event`` as a CloudEvent; ``time`` defaults to now (UTC)."""
    eid = event_id or new_event_id()
    headers = {
        "ce-specversion": SPECVERSION,
        "ce-id": eid,
        "ce-source": event.SOURCE,
        "ce-type": event.TYPE,
        "ce-time": (time or datetime.now(UTC)).isoformat(),
        "ce-subject": event.ce_subject(),
        "content-type": CONTENT_TYPE,
        MSG_ID_HEADER: eid,
    }
    return OutgoingMessage(event.subject(), headers, event.model_dump_json().encode())


_REQUIRED = ("ce-specversion", "ce-id", "ce-source", "ce-type")


def decode(headers: dict[str, str] | None, body: bytes) -> Envelope:
    """Parse and validate a CloudEvent; raise :class:`MalformedEvent` with the reason."""
    headers = headers or {}
    missing = [h for h in _REQUIRED if not headers.get(h)]
    if missing:
        raise MalformedEvent(f"missing CloudEvents header(s): {', '.join(missing)}")
    if headers["ce-specversion"] != SPECVERSION:
        raise MalformedEvent(f"unsupported ce-specversion {headers['ce-specversion']!r}")
    model = EVENT_TYPES.get(headers["ce-type"])
    if model is None:
        raise MalformedEvent(f"unknown event type {headers['ce-type']!r}")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"body is not JSON: {exc}") from exc
    try:
        data = model.model_validate(payload)
    except ValidationError as exc:
        # Field locations and messages only: the offending input values could be identifying.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
        )
        raise MalformedEvent(f"{model.TYPE} failed validation: {problems}") from None
    return Envelope(
        id=headers["ce-id"],
        type=headers["ce-type"],
        source=headers["ce-source"],
        time=headers.get("ce-time", ""),
        subject=headers.get("ce-subject", ""),
        data=data,
    )
