"""Pure domain rules of the walking skeleton, tested without I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.intake.domain import Case, Consent, DomainError
from services.notification.domain import CaseNotKnownYet, ContactProfile, plan_referral_checkin, render
from services.referral.domain import Partner, choose_partner, refer_new_case
from services.reporting.domain import Contribution, contributions, local_day
from shared.events import CaseOpened, ConsentSnapshot, MessageSent, NeedUnmatched, ReferralRequested
from shared.provinces import UnknownProvince
from shared.vocab import Channel, ServiceCategory

NOW = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)  # 23:30 in Hà Nội: already the 23rd there too
LEGAL, HEALTH = ServiceCategory.LEGAL, ServiceCategory.HEALTH_EDUCATION


def opened(consent_referral: bool = True, sms: bool = True, province: str = "01", **kw: object) -> CaseOpened:
    return CaseOpened(
        case_id="c1",
        province=province,
        channel=Channel.WALK_IN,
        needs=[LEGAL, HEALTH],
        consent=ConsentSnapshot(referral=consent_referral, sms=sms),
        opened_at=NOW,
        **kw,  # type: ignore[arg-type]
    )


class TestCaseOpen:
    def test_records_case_opened_with_needs_once_each(self) -> None:
        case = Case.open(
            case_id="c1",
            province="01",
            channel=Channel.HOTLINE,
            needs=[LEGAL, LEGAL, HEALTH],
            consent=Consent(referral=True, sms=False),
            has_phone=False,
            at=NOW,
        )
        assert case.needs == [LEGAL, HEALTH]
        [event] = case.events
        assert isinstance(event, CaseOpened)
        assert event.needs == [LEGAL, HEALTH] and event.subject() == "osso.case.01.opened"

    def test_sms_consent_needs_a_phone(self) -> None:
        with pytest.raises(DomainError, match="phone"):
            Case.open(
                case_id="c1",
                province="01",
                channel=Channel.HOTLINE,
                needs=[LEGAL],
                consent=Consent(referral=True, sms=True),
                has_phone=False,
                at=NOW,
            )

    def test_naive_time_is_refused(self) -> None:
        with pytest.raises(DomainError, match="time zone"):
            Case.open(
                case_id="c1",
                province="01",
                channel=Channel.HOTLINE,
                needs=[LEGAL],
                consent=Consent(referral=True, sms=False),
                has_phone=False,
                at=NOW.replace(tzinfo=None),
            )

    def test_events_cannot_carry_extra_identifying_fields(self) -> None:
        with pytest.raises(ValueError, match="Extra inputs"):
            opened(phone="+84912345678")


class TestMatching:
    partners = (
        Partner("b-legal", "B", "01", frozenset({LEGAL})),
        Partner("a-legal", "A", "01", frozenset({LEGAL})),
        Partner("closed", "C", "01", frozenset({HEALTH}), active=False),
        Partner("hp-health", "H", "31", frozenset({HEALTH})),
    )

    def test_same_province_active_offering_the_category_lowest_id(self) -> None:
        assert choose_partner(self.partners, "01", LEGAL) == self.partners[1]
        assert choose_partner(self.partners, "01", HEALTH) is None  # inactive or other province
        assert choose_partner(self.partners, "31", HEALTH) == self.partners[3]

    def test_refers_each_need_or_reports_it_unmatched(self) -> None:
        ids = iter(["r1", "r2"])
        referrals, unmatched = refer_new_case(opened(), self.partners, lambda: next(ids), NOW)
        assert [(r.id, r.partner_id, r.category) for r in referrals] == [("r1", "a-legal", LEGAL)]
        [event] = referrals[0].events
        assert isinstance(event, ReferralRequested) and event.subject() == "osso.referral.a-legal.requested"
        [miss] = unmatched
        assert isinstance(miss, NeedUnmatched) and miss.category == HEALTH

    def test_nothing_is_referred_without_consent(self) -> None:
        assert refer_new_case(opened(consent_referral=False), self.partners, lambda: "x", NOW) == ([], [])


class TestFollowUpPlan:
    requested = ReferralRequested(
        referral_id="r1", case_id="c1", partner_id="p", province="01", category=LEGAL, requested_at=NOW
    )

    def test_check_in_after_the_configured_delay(self) -> None:
        f = plan_referral_checkin(
            self.requested,
            ContactProfile("c1", "01", True),
            message_id="m1",
            now=NOW,
            delay=timedelta(days=2),
        )
        assert f is not None and f.due_at == NOW + timedelta(days=2) and f.referral_id == "r1"
        assert f.events[0].subject() == "osso.notification.01.scheduled"

    def test_no_message_without_sms_consent(self) -> None:
        profile = ContactProfile("c1", "01", False)
        assert (
            plan_referral_checkin(self.requested, profile, message_id="m", now=NOW, delay=timedelta()) is None
        )

    def test_unknown_case_is_retried_not_dropped(self) -> None:
        with pytest.raises(CaseNotKnownYet):
            plan_referral_checkin(self.requested, None, message_id="m", now=NOW, delay=timedelta())

    def test_render_falls_back_to_vietnamese(self) -> None:
        assert render("referral_checkin", "fr") == render("referral_checkin", "vi")
        assert render("referral_checkin", "en").startswith("Hello")


class TestReportingContributions:
    def test_day_is_vietnam_local(self) -> None:
        assert local_day(datetime(2026, 6, 30, 17, 30, tzinfo=UTC)) == date(2026, 7, 1)

    def test_case_opened_counts_case_and_needs(self) -> None:
        assert contributions(opened()) == [
            Contribution("01", date(2026, 11, 23), "", "cases_opened", 1),
            Contribution("01", date(2026, 11, 23), "legal", "needs_assessed", 1),
            Contribution("01", date(2026, 11, 23), "health_education", "needs_assessed", 1),
        ]

    def test_legacy_province_codes_are_mapped(self) -> None:
        [first, *_] = contributions(opened(province="30", province_scheme="vn-legacy"))  # Hải Dương
        assert first.province == "31"

    def test_unknown_province_raises(self) -> None:
        with pytest.raises(UnknownProvince, match="'99'"):
            contributions(opened(province="99"))

    def test_sms_segments_are_summed(self) -> None:
        sent = MessageSent(message_id="m", case_id="c", province="92", segments=2, sent_at=NOW)
        assert [c.metric for c in contributions(sent)] == ["messages_sent", "sms_segments"]
        assert contributions(sent)[1].delta == 2
