import pytest

from shared.phones import InvalidPhone, is_mobile, mask, to_e164


@pytest.mark.parametrize(
    "raw",
    [
        "0912345678",
        "091 234 5678",
        "0912.345.678",
        "+84912345678",
        "+84 91 234 5678",
        "84912345678",
        "0084912345678",
        "+84 (0)912345678",
        " 0912345678 ",
    ],
)
def test_common_ways_of_typing_a_vietnamese_mobile(raw: str) -> None:
    assert to_e164(raw) == "+84912345678"


@pytest.mark.parametrize("raw", ["0321234567", "0561234567", "0701234567", "0812345678", "0987654321"])
def test_all_mobile_prefixes_are_accepted(raw: str) -> None:
    e164 = to_e164(raw, mobile_only=True)
    assert e164 == "+84" + raw[1:]
    assert is_mobile(e164)


def test_foreign_numbers_need_a_country_code() -> None:
    assert to_e164("+86 138 0013 8000") == "+8613800138000"
    assert to_e164("(202) 555-0143", region="US") == "+12025550143"


def test_landline_is_valid_but_not_mobile() -> None:
    e164 = to_e164("024 3825 3456")
    assert e164 == "+842438253456"
    assert not is_mobile(e164)
    with pytest.raises(InvalidPhone, match="not a mobile number"):
        to_e164("024 3825 3456", mobile_only=True)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "not a phone number"),
        ("09l2345678", "contains letters"),
        ("091234567", "wrong length"),
        ("09123456789", "wrong length"),
        ("01612345678", "renumbered in 2018"),
        ("0612345678", "not a valid Vietnamese phone number"),
        ("+999 123456", "unknown country code"),
    ],
)
def test_invalid_numbers_say_why(raw: str, reason: str) -> None:
    with pytest.raises(InvalidPhone, match=reason):
        to_e164(raw)


def test_error_messages_do_not_echo_the_number() -> None:
    with pytest.raises(InvalidPhone) as excinfo:
        to_e164("0612345678")
    assert "612345678" not in str(excinfo.value)


def test_is_mobile_on_garbage_is_false() -> None:
    assert not is_mobile("not a number")
    assert not is_mobile("")


def test_mask_keeps_country_code_and_last_three_digits() -> None:
    assert mask("+84912345678") == "+84•••••678"
    assert mask("+8613800138000") == "+86•••••000"
    assert mask("+842438253456") == "+84•••••456"  # fixed width: the length is not revealed
    assert mask("garbage") == "•••••"
