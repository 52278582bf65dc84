"""Identifiers of cases, sessions, referrals and events: UUIDv7 (RFC 9562, section 5.7).

Version 7 starts with the creation time in milliseconds, so new ids land at the end of every
index keyed by them instead of on a random page: a registration touches a handful of B-tree pages
instead of one random page per index, which is most of what SQLite's WAL and checkpoints write
(and PostgreSQL's too). The other 74 bits are random, so ids are still unguessable. The time an id
carries is when the record was made, which the record shows anyway (``opened_at``, ``time``).

Written here rather than taken from ``uuid6``: that package keeps ids strictly increasing by
moving the clock forward a millisecond for each id made within the same millisecond, so at a few
thousand ids a second its timestamps run ahead of the real time. Locality needs only the
millisecond; ids made within one are in random order (RFC 9562 allows it).
"""

from __future__ import annotations

import secrets
import time
import uuid

_VERSION = 0x7 << 76  # bits 48-51
_VARIANT = 0x2 << 62  # bits 64-65: RFC 9562
_CLEAR = ~((0xF << 76) | (0x3 << 62))


def new_id() -> str:
    """A new time-ordered, unguessable id as 36 characters (``8-4-4-4-12`` hex)."""
    ms = time.time_ns() // 1_000_000
    value = ((ms & 0xFFFF_FFFF_FFFF) << 80 | secrets.randbits(80)) & _CLEAR | _VERSION | _VARIANT
    return str(uuid.UUID(int=value))
