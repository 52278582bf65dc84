"""The rebuild's shortcuts give what the slow ways give: the stream sequence from a reply subject,
a message's headers, the key order of cube rows, the in-memory cube's counting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.aio.msg import Msg

from services.reporting.projections import Cell, MemoryState
from services.reporting.replay import message_headers, stream_sequence
from services.reporting.rollup import cell_rows, level


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.OSSO_CASE.dur.1.4213.4213.1732345678901234567.0",
        "$JS.ACK.hub.ACCHASH.OSSO_REFERRAL.dur.2.17.9.1732345678901234567.3.r4nd0m",
        "$JS.ACK.hub.ACCHASH.OSSO_REFERRAL.dur.2.99.9.1732345678901234567.3",
    ],
)
def test_stream_sequence_as_metadata(reply: str) -> None:
    assert stream_sequence(reply.encode()) == Msg(_client=None, reply=reply).metadata.sequence.stream  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "block",
    [
        b"NATS/1.0\r\nce-type: vn.osso.case.opened.v1\r\nce-id: 1\r\n\r\n",
        b"NATS/1.0\r\nce-type:vn.osso.x.v1\r\n ce-id :  2 \r\nno colon\r\nbad name: x\r\n\r\n",
        b"NATS/1.0\r\nce-source: /t\r\nc\xc3\xa9: non-ascii name\r\nce-subject: \xff\xfe\r\n\r\n",
        b"NATS/1.0\r\nce-id: 1\r\nce-id: 2\r\nx\x1f: y\r\n\r\n",
        b"NATS/1.0\r\n\r\n",
    ],
)
def test_message_headers_as_nats_py_reads_them(block: bytes) -> None:
    # What the live consumers see (nats-py's parser), so a malformed event is skipped alike.
    assert message_headers(block) == (Client._parse_header_lines(block[len(b"NATS/1.0\r\n") :]) or None)


_PIECES = [b"ce-id", b"ce-type", b"x", b":", b" ", b"\t", b"\x0b", b"\r", b"\n", b"\xc2\x85", b"\xc2\xa0",
           b"\xe2\x80\x83", b"\xff", b"\xe2\x82", b"\xc3\xa9", b"1", b"\x1f", b"NATS/1.0"]  # fmt: skip


@given(st.lists(st.lists(st.sampled_from(_PIECES), max_size=8).map(b"".join), max_size=6))
@settings(max_examples=3000, deadline=None)
def test_any_header_block_as_nats_py_reads_it(lines: list[bytes]) -> None:
    # Odd spaces (Unicode's own, which str.strip would take), invalid and cut UTF-8 next to the
    # separators, names with bytes past ASCII, lines with no colon.
    block = b"NATS/1.0\r\n" + b"\r\n".join(lines) + b"\r\n\r\n"
    assert message_headers(block) == (Client._parse_header_lines(block[len(b"NATS/1.0\r\n") :]) or None)


def test_cell_rows_in_primary_key_order() -> None:
    cells: list[Cell] = [
        ("M2025-07", "31", "", "*", "*", "*", "*", "sessions"),
        ("M2025-07", "31", "", "*", "*", "*", "*", "messages_sent"),
        ("D2025-07-01", "01", "health", "sms", "labour", "forced", "18-24", "sessions"),
        ("M2025-07", "31", "", "sms", "*", "*", "*", "sessions"),
        ("M2025-07", "3", "", "*", "*", "*", "*", "sessions"),
        ("M2025-07", "31", "legal", "*", "*", "*", "*", "sessions"),
        ("M2025-07", "31", "legal", "*", "*", "*", "*", "zero"),
        ("M2025-07", "31", "legal", "*", "*", "*", "*", "d2c:12"),
        ("M2025-07", "31", "legal", "*", "*", "*", "*", "d2c:3"),
        ("M2025-07", "31", "legal", "*", "*", "*", "*", "d2a:40"),
        ("M2025-07", "31", "", "*", "*", "*", "*", "d2c:1"),
        ("M2025-07", "31", "", "*", "*", "*", "*", "d2c:5"),
    ]
    values = [3, 1, 2, 5, 4, 7, 0, 2, 1, 1, 0, -1]
    plain, histograms = cell_rows(zip(cells, values, strict=True))
    assert plain == sorted((level(c), *c, v) for c, v in zip(cells[:7], values[:7], strict=True) if v)
    # A histogram's days are one row under its prefix, pairs in order of days.
    assert histograms == [
        ("all", "M2025-07", "31", "", "*", "*", "*", "*", "d2c:", -1, "5 -1"),
        ("all", "M2025-07", "31", "legal", "*", "*", "*", "*", "d2a:", 1, "40 1"),
        ("all", "M2025-07", "31", "legal", "*", "*", "*", "*", "d2c:", 3, "3 1,12 2"),
    ]


def test_memory_cube_counts_any_delta() -> None:
    state = MemoryState()
    a: Cell = ("M2025-07", "31", "", "*", "*", "*", "*", "sessions")
    b: Cell = ("M2025-07", "31", "", "sms", "*", "*", "*", "sessions")
    state.bump_all([a, b, a], 1)
    state.bump_all([b], 5)
    state.bump_all([a], -2)
    state.bump(b, -5)
    assert state.figures() == {b: 1}
    assert state.cube[a] == 0
