"""Her identifying data (plain values, encrypted by the store) and the rules for reading it.

Nothing here is ever put in an event, a log line or a metric: only :mod:`services.intake.protect`
turns it into ciphertext and keyed hashes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from shared.provinces import UnknownProvince, map_legacy_code
from shared.vntext import fold, nfc

_CCCD_RE = re.compile(r"\d{12}")


class InvalidCitizenId(ValueError):
    """A CCCD number that cannot be right; the message says why and never repeats the number."""


def normalise_cccd(raw: str, birth_year: int | None = None) -> str:
    """Check a citizen identity card (CCCD) number: 12 digits, a birth-province code, and a
    century/sex digit and year that agree with ``birth_year`` when it is known.

    Spaces, dots and dashes typed between digit groups are dropped.
    """
    digits = re.sub(r"[\s.-]", "", raw)
    if not digits:
        raise InvalidCitizenId("empty citizen ID")
    if not digits.isdigit() or not digits.isascii():
        raise InvalidCitizenId("a citizen ID (CCCD) has digits only")
    if not _CCCD_RE.fullmatch(digits):
        raise InvalidCitizenId(f"a citizen ID (CCCD) has 12 digits, this one has {len(digits)}")
    if digits[0] != "0":
        raise InvalidCitizenId(_PROVINCE_RULE)
    try:
        map_legacy_code(digits[1:3])
    except UnknownProvince:
        raise InvalidCitizenId(_PROVINCE_RULE) from None
    century = {"0": 1900, "1": 1900, "2": 2000, "3": 2000, "4": 2100, "5": 2100}.get(digits[3])
    if century is None:
        raise InvalidCitizenId("the 4th digit of a CCCD (century and sex) must be 0-5")
    if birth_year is not None and century + int(digits[4:6]) != birth_year:
        raise InvalidCitizenId("digits 5-6 of the CCCD (year of birth) do not match the birth year")
    return digits


_PROVINCE_RULE = "the first 3 digits of a CCCD are a birth-province code (001-096, pre-2025 list)"


def clean_name(raw: str) -> str:
    """A name as typed, in NFC, with runs of whitespace collapsed."""
    return " ".join(nfc(raw).split())


def name_tokens(name: str) -> list[str]:
    """The folded words of a name, each once ("Nguyễn Thị Hoà" -> ["nguyen", "thi", "hoa"])."""
    return list(dict.fromkeys(fold(name).split()))


@dataclass
class Address:
    ward: str | None = None  # 5-digit post-2025 ward code
    line: str | None = None  # street, hamlet: free text, encrypted


@dataclass
class ChildIdentity:
    name: str | None = None


@dataclass
class Identity:
    """Everything that identifies her; stored only as one ciphertext under the case's own key."""

    full_name: str | None = None
    birth_date: date | None = None
    birth_year: int | None = None
    phones: list[str] = field(default_factory=list)  # E.164
    cccd: str | None = None
    address: Address = field(default_factory=Address)
    notes: str | None = None
    children: list[ChildIdentity] = field(default_factory=list)

    @property
    def year_of_birth(self) -> int | None:
        return self.birth_date.year if self.birth_date else self.birth_year

    def to_json(self) -> dict[str, Any]:
        # Written out, not dataclasses.asdict (a recursive deep copy): every registration seals one,
        # and asdict was 4 % of a registration's CPU.
        return {
            "full_name": self.full_name,
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
            "birth_year": self.birth_year,
            "phones": list(self.phones),
            "cccd": self.cccd,
            "address": {"ward": self.address.ward, "line": self.address.line},
            "notes": self.notes,
            "children": [{"name": c.name} for c in self.children],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Identity:
        return cls(
            full_name=data.get("full_name"),
            birth_date=date.fromisoformat(data["birth_date"]) if data.get("birth_date") else None,
            birth_year=data.get("birth_year"),
            phones=list(data.get("phones") or []),
            cccd=data.get("cccd"),
            address=Address(**(data.get("address") or {})),
            notes=data.get("notes"),
            children=[ChildIdentity(**c) for c in data.get("children") or []],
        )

    def filled_fields(self) -> list[str]:
        """Names of the identifying fields that hold a value (for the audit log)."""
        names = []
        for name in ("full_name", "birth_date", "birth_year", "phones", "cccd", "notes"):
            if getattr(self, name):
                names.append(name)
        if self.address.ward or self.address.line:
            names.append("address")
        if any(c.name for c in self.children):
            names.append("children.name")
        return names


@dataclass(frozen=True)
class SearchKey:
    """A value to put through the blind index: ``kind`` is phone, cccd, name, name_token or name_year."""

    kind: str
    value: str


def search_keys(identity: Identity, province: str) -> list[SearchKey]:
    """What to index so she can be found by phone, CCCD or name without decrypting anything."""
    keys = [SearchKey("phone", p) for p in dict.fromkeys(identity.phones)]
    if identity.cccd:
        keys.append(SearchKey("cccd", identity.cccd))
    if identity.full_name:
        folded = fold(identity.full_name)
        keys.append(SearchKey("name", folded))
        keys.extend(SearchKey("name_token", t) for t in name_tokens(identity.full_name))
        if identity.year_of_birth:
            keys.append(SearchKey("name_year", f"{province}|{folded}|{identity.year_of_birth}"))
    return keys


#: Duplicates that block a registration until the caseworker confirms; a phone alone only warns
#: (a phone is often shared by a family, a hostel, or the person she fled).
STRONG_DUPLICATE_KINDS = frozenset({"cccd", "name_year"})


#: The search keys a registration looks for among existing cases.
DUPLICATE_KINDS = frozenset({"phone", "cccd", "name_year"})
