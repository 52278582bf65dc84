"""Pure plumbing: the CloudEvents envelope, SMS segment counting, log scrubbing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from shared.envelope import MalformedEvent, decode, encode
from shared.events import CaseOpened, ConsentSnapshot
from shared.logs import scrub
from shared.sms import encode_info
from shared.vocab import Channel, ServiceCategory

EVENT = CaseOpened(
    case_id=str(uuid.uuid4()),
    province="01",
    channel=Channel.ONLINE,
    needs=[ServiceCategory.LEGAL],
    consent=ConsentSnapshot(referral=True, sms=False),
    opened_at=datetime(2026, 1, 1, tzinfo=UTC),
)


class TestEnvelope:
    def test_binary_mode_headers_and_msg_id(self) -> None:
        m = encode(EVENT)
        h = m.headers
        assert h["ce-specversion"] == "1.0" and h["ce-type"] == "vn.osso.case.opened.v1"
        assert h["ce-source"] == "/osso/intake" and h["ce-subject"] == EVENT.case_id
        assert h["Nats-Msg-Id"] == h["ce-id"] and h["content-type"] == "application/json"
        assert m.subject == "osso.case.01.opened"
        assert decode(h, m.body).data == EVENT

    @pytest.mark.parametrize(
        ("headers", "body", "reason"),
        [
            ({}, b"{}", "missing CloudEvents header"),
            ({"ce-specversion": "0.3", "ce-id": "1", "ce-source": "s", "ce-type": "t"}, b"{}", "specversion"),
            (
                {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "nope"},
                b"{}",
                "unknown event",
            ),
            (
                {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": EVENT.TYPE},
                b"{",
                "not JSON",
            ),
        ],
    )
    def test_malformed_says_why(self, headers: dict[str, str], body: bytes, reason: str) -> None:
        with pytest.raises(MalformedEvent, match=reason):
            decode(headers, body)

    def test_validation_reason_names_fields_but_not_values(self) -> None:
        m = encode(EVENT)
        body = m.body.replace(b'"01"', b'"0912345678"')
        with pytest.raises(MalformedEvent) as info:
            decode(m.headers, body)
        assert "province" in str(info.value) and "0912345678" not in str(info.value)


class TestSmsSegments:
    @pytest.mark.parametrize(
        ("text", "encoding", "segments"),
        [
            ("a" * 160, "GSM-7", 1),
            ("a" * 161, "GSM-7", 2),
            ("a" * 306, "GSM-7", 2),
            ("a" * 307, "GSM-7", 3),
            ("€" * 80, "GSM-7", 1),  # extension characters count twice
            ("€" * 81, "GSM-7", 2),
            ("ă" * 70, "UCS-2", 1),
            ("ă" * 71, "UCS-2", 2),
            ("Chào chị" + "a" * 126, "UCS-2", 2),  # 134 units: one accented letter makes it all UCS-2
            ("Chào chị" + "a" * 127, "UCS-2", 3),
            ("Chao chi", "GSM-7", 1),
        ],
    )
    def test_golden(self, text: str, encoding: str, segments: int) -> None:
        info = encode_info(text)
        assert (info.encoding, info.segments) == (encoding, segments)


def test_scrub_masks_phones_ids_and_emails() -> None:
    line = "call 0912 345 678 or +84912345678, id 001234567890, mail a.b@example.vn, case 42"
    cleaned = scrub(line)
    for secret in ("0912 345 678", "+84912345678", "001234567890", "a.b@example.vn"):
        assert secret not in cleaned
    assert "case 42" in cleaned


def test_reprovisioning_never_lowers_stream_replication_unless_asked() -> None:
    from shared.streams import kept_replicas

    assert kept_replicas(3, 1, allow_fewer=False) == 3  # `osso up` against an R3 cluster keeps R3
    assert kept_replicas(1, 3, allow_fewer=False) == 3  # raising is always allowed
    assert kept_replicas(3, 1, allow_fewer=True) == 1
