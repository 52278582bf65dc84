"""SMS encoding and segment counting (3GPP TS 23.038).

A message that fits the GSM-7 alphabet costs 160 characters a segment (153 when concatenated,
extension characters count twice); anything else, Vietnamese diacritics included, is sent as
UCS-2 at 70 characters a segment (67 concatenated, characters outside the BMP count twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsEncoding:
    encoding: Literal["GSM-7", "UCS-2"]
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def encode_info(text: str) -> SmsEncoding:
    """Encoding, length in units and number of segments ``text`` needs as one SMS."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        units = sum(2 if c in GSM7_EXTENSION else 1 for c in text)
        single, multi = 160, 153
        encoding: Literal["GSM-7", "UCS-2"] = "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
        encoding = "UCS-2"
    if units <= single:
        return SmsEncoding(encoding, units, 1)
    return SmsEncoding(encoding, units, -(-units // multi))
