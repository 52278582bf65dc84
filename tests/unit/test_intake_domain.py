"""Intake's pure rules: lifecycle, consent, needs, CCCD, name folding for the blind index."""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime

import pytest

from services.intake.domain import (
    Address,
    Case,
    ChildIdentity,
    CloseReason,
    Consent,
    DomainError,
    Identity,
    IllegalTransition,
    InvalidCitizenId,
    age_band,
    normalise_cccd,
    search_keys,
)
from shared.events import AgeBand, CaseStatusChanged, ConsentChanged, ConsentPurpose, Need, NeedPriority
from shared.vocab import Channel, ServiceCategory

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def case(**kw: object) -> Case:
    c = Case.open(
        case_id="c1",
        province="01",
        channel=Channel.HOTLINE,
        needs=[ServiceCategory.LEGAL],
        consent=Consent(referral=True, sms=True),
        has_phone=True,
        at=NOW,
        **kw,  # type: ignore[arg-type]
    )
    c.events.clear()
    return c


def test_lifecycle_open_active_closed_reopened() -> None:
    c = case()
    c.record_session(session_id="s1", channel=Channel.WALK_IN, topics=[ServiceCategory.LEGAL],
                     duration_minutes=30, held_on=date(2026, 11, 22), at=NOW)  # fmt: skip
    c.close(CloseReason.RESOLVED, NOW)
    with pytest.raises(IllegalTransition):
        c.close(CloseReason.RESOLVED, NOW)
    with pytest.raises(IllegalTransition):
        c.assess_needs([Need(category=ServiceCategory.HEALTH_EDUCATION)], NOW)
    c.reopen(NOW)
    moves = [
        (e.from_status, e.to_status, e.reason, e.reopened)
        for e in c.events
        if isinstance(e, CaseStatusChanged)
    ]
    assert moves == [("open", "active", None, False), ("active", "closed", "resolved", False),
                     ("closed", "active", None, True)]  # fmt: skip


def test_session_in_the_future_is_refused() -> None:
    with pytest.raises(DomainError, match="held_on"):
        case().record_session(session_id="s", channel=Channel.HOTLINE, topics=[], duration_minutes=1,
                              held_on=date(2027, 1, 1), at=NOW)  # fmt: skip


def test_consent_changes_are_events_and_no_ops_are_not() -> None:
    c = case()
    assert c.set_consent(ConsentPurpose.SMS, False, recorded_by="sms_opt_out", at=NOW)
    assert not c.set_consent(ConsentPurpose.SMS, False, recorded_by="sms_opt_out", at=NOW)
    assert c.set_consent(ConsentPurpose.REFERRAL, True, recorded_by="caseworker", at=NOW,
                         referral_categories=[ServiceCategory.LEGAL])  # fmt: skip
    events = [e for e in c.events if isinstance(e, ConsentChanged)]
    assert [(e.purpose, e.granted, e.recorded_by) for e in events] == [
        ("sms", False, "sms_opt_out"), ("referral", True, "caseworker")]  # fmt: skip
    assert c.consent.referral_categories == (ServiceCategory.LEGAL,)


def test_needs_are_merged_with_priorities() -> None:
    c = case(priorities={ServiceCategory.LEGAL: NeedPriority.LOW})
    c.assess_needs([Need(category=ServiceCategory.LEGAL, priority=NeedPriority.URGENT),
                    Need(category=ServiceCategory.CHILDREN)], NOW)  # fmt: skip
    assert [(n.category, n.priority) for n in c.assessed_needs] == [
        ("legal", "urgent"),
        ("children", "normal"),
    ]


@pytest.mark.parametrize(
    ("raw", "year", "why"),
    [("12345", None, "12 digits"), ("00119001234a", None, "digits only"), ("999190012345", None, "province"),
     ("001990012345", None, "4th digit"), ("001190012345", 1991, "birth year")],
)  # fmt: skip
def test_bad_cccd_says_why_without_repeating_it(raw: str, year: int | None, why: str) -> None:
    with pytest.raises(InvalidCitizenId, match=why) as info:
        normalise_cccd(raw, year)
    assert raw not in str(info.value)


def test_good_cccd_is_normalised() -> None:
    assert normalise_cccd("001 190-012.345", 1990) == "001190012345"
    assert normalise_cccd("079305000001", 2005) == "079305000001"


def test_name_spellings_give_the_same_search_keys() -> None:
    spellings = [
        "Nguyễn Thị Hòa",
        "Nguyễn Thị Hoà",
        unicodedata.normalize("NFD", "NGUYỄN THỊ HÒA"),
        "nguyen  thi hoa",
    ]
    keys = {tuple(search_keys(Identity(full_name=s, birth_year=1990), "01")) for s in spellings}
    assert len(keys) == 1
    [ks] = keys
    assert {k.kind for k in ks} == {"name", "name_token", "name_year"}
    d = search_keys(Identity(full_name="Đặng Đình"), "01")
    assert [k.value for k in d if k.kind == "name"] == ["dang dinh"]


def test_age_band() -> None:
    assert age_band(None, NOW.date()) is AgeBand.UNKNOWN
    assert age_band(2010, NOW.date()) is AgeBand.UNDER_18
    assert age_band(1990, NOW.date()) is AgeBand.A35_44
    assert age_band(1950, NOW.date()) is AgeBand.A55_PLUS


def test_her_identity_is_sealed_whole_and_opens_the_same() -> None:
    """to_json is written out field by field (no dataclasses.asdict): every field must be in it,
    nested ones too, and from_json must give back the same identity."""
    from dataclasses import asdict, fields

    identity = Identity(
        full_name="Nguyễn Thị Hoà",
        birth_date=date(1990, 5, 17),
        birth_year=1990,
        phones=["+84912345678", "+84387654321"],
        cccd="001190123456",
        address=Address(ward="00004", line="số 5 ngõ 7"),
        notes="ghi chú",
        children=[ChildIdentity(name="Bé An"), ChildIdentity(name=None)],
    )
    data = identity.to_json()
    assert set(data) == {f.name for f in fields(Identity)}
    assert data == {**asdict(identity), "birth_date": "1990-05-17"}
    assert Identity.from_json(data) == identity
