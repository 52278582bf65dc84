"""What a partner may read about her: consented categories only, minimal fields."""

from __future__ import annotations

import pytest

from services.intake.domain.case import Consent
from services.intake.domain.identity import Address, ChildIdentity, Identity
from services.intake.domain.sharing import NothingConsented, first_name, shared_fields
from shared.vocab import ServiceCategory as C

HER = Identity(
    full_name="Nguyễn Thị Hòa", birth_year=1990, phones=["+84912345678"], cccd="001190012345",
    address=Address(ward="00004", line="số 5 ngõ 7"), notes="…", children=[ChildIdentity("Bé")],
)  # fmt: skip
ALL = Consent(referral=True, sms=True)


def test_first_name_is_the_last_word() -> None:
    assert first_name("Nguyễn Thị Hòa") == "Hòa"
    assert first_name("  ") is None and first_name(None) is None


def test_legal_aid_gets_first_name_and_phone_only() -> None:
    assert shared_fields(HER, ALL, C.LEGAL, do_not_contact=False) == {
        "first_name": "Hòa",
        "phone": "+84912345678",
    }


@pytest.mark.parametrize("category", list(C))
def test_never_the_cccd_address_line_notes_or_full_name(category: C) -> None:
    fields = shared_fields(HER, ALL, category, do_not_contact=False)
    values = set(map(str, fields.values()))
    assert not values & {"Nguyễn Thị Hòa", "001190012345", "số 5 ngõ 7", "…", "Bé"}
    assert "first_name" in fields


def test_do_not_contact_withholds_the_phone() -> None:
    assert "phone" not in shared_fields(HER, ALL, C.PSYCHOLOGICAL, do_not_contact=True)


def test_nothing_without_consent_for_that_category() -> None:
    with pytest.raises(NothingConsented):
        shared_fields(HER, Consent(referral=False, sms=True), C.LEGAL, do_not_contact=False)
    only_health = Consent(referral=True, sms=True, referral_categories=(C.HEALTH_EDUCATION,))
    with pytest.raises(NothingConsented):
        shared_fields(HER, only_health, C.LEGAL, do_not_contact=False)
    assert shared_fields(HER, only_health, C.HEALTH_EDUCATION, do_not_contact=False)["birth_year"] == 1990
