"""Phone numbers: parse what people type into E.164, check for mobiles, mask for display.

Error messages never repeat the number itself: they end up in logs and the number is personal data.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, NumberParseException, PhoneNumberFormat, PhoneNumberType

_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
_VN_MOBILE_PREFIXES = "35789"  # national significant numbers of VN mobiles: 3x, 5x, 7x, 8x, 9x + 7 digits
_MASK = "•••••"  # fixed width, so the mask does not reveal the number's length


class InvalidPhone(ValueError):
    pass


_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "wrong length: too short",
    NumberParseException.TOO_SHORT_NSN: "wrong length: too short",
    NumberParseException.TOO_LONG: "wrong length: too long",
}


def _invalid_reason(number: phonenumbers.PhoneNumber) -> str:
    if number.country_code != 84:
        return f"not a valid phone number for country code +{number.country_code}"
    national = str(number.national_number)
    if national.startswith("1") and len(national) == 10:
        # Before September 2018 some mobiles had 11 digits (01xx...); they were renumbered to 03x/05x/07x/08x.
        return "old 11-digit 01x mobile number; it was renumbered in 2018 (e.g. 016x -> 03x)"
    if national[0] in _VN_MOBILE_PREFIXES and len(national) != 9:
        return "wrong length: a Vietnamese mobile number has 10 digits (0 followed by 9 digits)"
    return "not a valid Vietnamese phone number (mobile numbers start with 03, 05, 07, 08 or 09)"


def to_e164(raw: str, region: str = "VN", *, mobile_only: bool = False) -> str:
    """Parse a phone number as typed ("091 234 5678", "+84...", "84...", "0084...") into E.164.

    Numbers without a country code are read as numbers of `region`. With `mobile_only`, fixed lines
    (and numbers whose type is unknown) are rejected too. Raises InvalidPhone saying why.
    """
    text = raw.strip()
    if not text:
        raise InvalidPhone("empty phone number")
    # phonenumbers would silently read letters as a keypad word ("1800-FLOWERS"); here they are typos.
    if re.search(r"[^\W\d_]", text):
        raise InvalidPhone("not a phone number: contains letters")
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as error:
        raise InvalidPhone(_PARSE_ERRORS.get(error.error_type, "not a phone number")) from None
    # A number of a mobile type is valid (number_type matches the same patterns is_valid_number
    # does), so the common case is checked once; the reasons are worked out only for a refusal.
    if mobile_only and phonenumbers.number_type(number) in _MOBILE_TYPES:
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(_invalid_reason(number))
    if mobile_only:
        raise InvalidPhone("not a mobile number")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def is_mobile(e164: str) -> bool:
    """Whether an E.164 number is a valid mobile number (so it can receive SMS)."""
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return False
    return phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in _MOBILE_TYPES


def mask(e164: str) -> str:
    """Mask a number for display and logs, keeping the country code and last 3 digits: "+84•••••678"."""
    digits = re.sub(r"\D", "", e164)
    prefix = ""
    if e164.startswith("+"):
        # Country calling codes are prefix-free (1 to 3 digits): the first known one is hers. A
        # table look-up, not a full parse: every registration's response masks her number.
        for n in (1, 2, 3):
            if digits[:n].isdigit() and int(digits[:n]) in COUNTRY_CODE_TO_REGION_CODE:
                prefix = f"+{digits[:n]}"
                break
    # Numbers too short to hide anything after showing 3 digits are masked entirely.
    tail = digits[-3:] if len(digits) >= 7 else ""
    return f"{prefix}{_MASK}{tail}"
