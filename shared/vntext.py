"""Vietnamese text helpers: normalisation for storage, folding for search, unaccenting for SMS."""

from __future__ import annotations

import unicodedata

# đ/Đ are letters of their own, not d + a combining mark, so NFD does not strip them.
# U+00D0 (Icelandic eth) is a common look-alike typed instead of Đ.
_D_MAP = str.maketrans({"đ": "d", "Đ": "D", "Ð": "D"})


def nfc(s: str) -> str:
    """The NFC form of `s`, which is what we store (input arrives in NFC or NFD)."""
    return unicodedata.normalize("NFC", s)


def unaccent(s: str) -> str:
    """Strip Vietnamese diacritics keeping case ("Đà Nẵng" -> "Da Nang"), e.g. for GSM-7 SMS."""
    decomposed = unicodedata.normalize("NFD", s.translate(_D_MAP))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped)


def fold(s: str) -> str:
    """A key for search and duplicate matching.

    Insensitive to NFC/NFD, case, diacritics (so "Hòa"/"Hoà"/"Hoa" agree), đ/d and runs of whitespace.
    """
    return " ".join(unaccent(s).casefold().split())
