"""Ids are RFC 9562 version 7: unique, time-ordered by the millisecond, the real time inside."""

from __future__ import annotations

import time
import uuid

from shared.ids import new_id


def test_ids_are_version_7_with_the_time_of_making() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert len(set(ids)) == len(ids)
    stamps = [u.int >> 80 for u in parsed]
    # The clock does not run ahead however many are made per millisecond (uuid6's does).
    assert before <= min(stamps) and max(stamps) <= after
    # Ordered by millisecond: what keeps index inserts at the end of the index.
    assert stamps == sorted(stamps)
    assert sorted(ids, key=lambda i: uuid.UUID(i).int >> 80) == ids
