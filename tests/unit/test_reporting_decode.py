"""Reporting's fast decoding gives what ``shared.envelope.decode`` gives, errors included."""

from __future__ import annotations

import pytest

from services.reporting.batch import decode_fast
from shared.envelope import MalformedEvent, decode, encode
from tests.unit.test_reporting_history import generate

EVENTS = generate(30, seed=3).events


@pytest.mark.parametrize("n", range(0, len(EVENTS), max(1, len(EVENTS) // 40)))
def test_same_envelope_as_decode(n: int) -> None:
    message = encode(EVENTS[n])
    assert decode_fast(message.headers, message.body) == decode(message.headers, message.body)


@pytest.mark.parametrize(
    ("change", "body"),
    [
        ({"ce-type": "vn.osso.nothing.v1"}, None),
        ({"ce-specversion": "0.3"}, None),
        ({"ce-source": ""}, None),
        ({}, b"{not json"),
        ({}, b'{"case_id": "x"}'),
        ({}, b'{"case_id": "x", "province": "01", "phone": "0912345678"}'),
    ],
)
def test_same_error_as_decode(change: dict[str, str], body: bytes | None) -> None:
    message = encode(EVENTS[0])
    headers = {**message.headers, **change}
    payload = message.body if body is None else body
    with pytest.raises(MalformedEvent) as slow:
        decode(headers, payload)
    with pytest.raises(MalformedEvent) as fast:
        decode_fast(headers, payload)
    assert str(fast.value) == str(slow.value)
