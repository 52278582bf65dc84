"""Matching a need to partner services, and working-day deadlines: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import ClassVar
from zoneinfo import ZoneInfo

from services.referral.calendar import WorkingCalendar
from services.referral.domain import CaseFacts, match_needs
from services.referral.matching import NeedToMatch, PartnerService, best, rank, why_not
from shared.events import Need, NeedPriority, NeedUnmatched, ReferralRequested
from shared.vocab import ServiceCategory

LEGAL, CHILDREN, PSY = ServiceCategory.LEGAL, ServiceCategory.CHILDREN, ServiceCategory.PSYCHOLOGICAL
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
VN = ZoneInfo("Asia/Ho_Chi_Minh")


def svc(sid: str, partner: str | None = None, cat: ServiceCategory = LEGAL, **kw: object) -> PartnerService:
    kw.setdefault("provinces", frozenset({"01"}))
    return PartnerService(service_id=sid, partner_id=partner or sid, category=cat, **kw)  # type: ignore[arg-type]


class TestRank:
    def test_her_ward_before_her_province_then_least_loaded_then_id(self) -> None:
        services = [
            svc("b-province"),
            svc("a-province"),
            svc("ward-only", provinces=frozenset(), wards=frozenset({"00070"})),
            svc("busy", capacity=10),
            svc("calm", capacity=10),
        ]
        need = NeedToMatch(LEGAL, "01", ward="00070")
        ranked = [m.service.service_id for m in rank(services, need, {"busy": 9, "calm": 1})]
        assert ranked == ["ward-only", "a-province", "b-province", "calm", "busy"]
        # Without her ward, the ward-only service does not serve her.
        assert "ward-only" not in [m.service.service_id for m in rank(services, NeedToMatch(LEGAL, "01"))]

    def test_filters_inactive_full_other_area_other_category_excluded(self) -> None:
        need = NeedToMatch(LEGAL, "01", exclude_partners=frozenset({"tried"}))
        cases = {
            "closed": (svc("closed", status="temporarily_closed"), "not_active"),
            "full": (svc("full", capacity=2), "capacity"),
            "far": (svc("far", provinces=frozenset({"31"})), "area"),
            "other": (svc("other", cat=PSY), "category"),
            "tried": (svc("tried"), "excluded"),
        }
        for s, reason in cases.values():
            assert why_not(s, need, load=2) == reason
        assert best([s for s, _ in cases.values()], need, {"full": 2}) is None

    def test_eligibility_language_women_only_children(self) -> None:
        assert why_not(svc("vi"), NeedToMatch(LEGAL, "01", language="en")) == "eligibility_language"
        women = svc("w", cat=CHILDREN, women_only=True)
        assert why_not(women, NeedToMatch(CHILDREN, "01")) == "eligibility_women_only"
        shelter = svc("s", cat=PSY, taxonomy_term="shelter", accepts_children=False)
        assert why_not(shelter, NeedToMatch(PSY, "01", with_children=True)) == "eligibility_children"
        assert why_not(shelter, NeedToMatch(PSY, "01")) is None

    def test_requested_taxonomy_term_first(self) -> None:
        services = [svc("a", taxonomy_term="legal_aid"), svc("b", taxonomy_term="divorce_custody")]
        need = NeedToMatch(LEGAL, "01", taxonomy_term="divorce_custody")
        assert best(services, need).service.service_id == "b"  # type: ignore[union-attr]


class TestMatchNeeds:
    services: ClassVar[list[PartnerService]] = [svc("hn-legal"), svc("hn-psy", cat=PSY)]

    def plan(self, case: CaseFacts, *needs: ServiceCategory):  # type: ignore[no-untyped-def]
        ids = iter(f"r{i}" for i in range(10))
        return match_needs(
            case,
            [Need(category=c, priority=NeedPriority.HIGH) for c in needs],
            self.services,
            new_id=lambda: next(ids),
            at=NOW,
            accept_by=lambda _c, at: at,
        )

    def test_refers_each_need_or_reports_no_partner_available(self) -> None:
        plan = self.plan(CaseFacts("c1", "01", consent_referral=True), LEGAL, CHILDREN)
        [r] = plan.referrals
        assert (r.partner_id, r.service_id, r.priority, r.accept_by) == ("hn-legal", "hn-legal", "high", NOW)
        assert isinstance(r.events[0], ReferralRequested)
        [miss] = plan.unmatched
        assert isinstance(miss, NeedUnmatched) and miss.category is CHILDREN
        assert miss.reason == "no_partner_available"

    def test_respects_consent_and_its_categories(self) -> None:
        assert self.plan(CaseFacts("c1", "01", consent_referral=False), LEGAL).events == []
        only_psy = CaseFacts("c1", "01", consent_referral=True, referral_categories=frozenset({PSY}))
        plan = self.plan(only_psy, LEGAL, PSY)
        assert [r.category for r in plan.referrals] == [PSY] and plan.not_consented == [LEGAL]
        closed = CaseFacts("c1", "01", consent_referral=True, status="closed")
        assert self.plan(closed, LEGAL).referrals == []

    def test_planned_referrals_count_against_capacity(self) -> None:
        services = [svc("one-slot", capacity=1)]
        ids = iter(["r1", "r2"])
        plan = match_needs(
            CaseFacts("c1", "01", consent_referral=True),
            [Need(category=LEGAL), Need(category=LEGAL)],
            services,
            new_id=lambda: next(ids),
            at=NOW,
        )
        assert len(plan.referrals) == 1 and len(plan.unmatched) == 1


class TestWorkingDays:
    cal = WorkingCalendar()

    def test_three_working_days_skip_the_weekend(self) -> None:
        friday = datetime(2026, 11, 27, 10, 0, tzinfo=VN)
        assert self.cal.add_working_days(friday, 3) == datetime(2026, 12, 2, 10, 0, tzinfo=VN)

    def test_local_day_is_vietnam_time(self) -> None:
        # Friday 18:00 UTC is Saturday 01:00 in Hà Nội: counting starts from Saturday.
        late_friday_utc = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
        due = self.cal.add_working_days(late_friday_utc, 1).astimezone(VN)
        assert due.date() == date(2026, 11, 30) and due.hour == 1

    def test_public_holidays_tet_and_national_day(self) -> None:
        assert not self.cal.is_working_day(date(2026, 2, 17))  # Tết
        assert not self.cal.is_working_day(date(2026, 9, 2))  # National Day
        before_tet = datetime(2026, 2, 13, 9, 0, tzinfo=VN)  # Friday; Tết Mon 16 - Fri 20 Feb 2026
        assert self.cal.add_working_days(before_tet, 3).date() == date(2026, 2, 25)
        weekends_only = WorkingCalendar(public_holidays=False)
        assert weekends_only.add_working_days(before_tet, 3).date() == date(2026, 2, 18)

    def test_extra_days_off(self) -> None:
        cal = WorkingCalendar(public_holidays=False, extra_holidays=[date(2026, 11, 30)])
        friday = datetime(2026, 11, 27, 10, 0, tzinfo=VN)
        assert cal.add_working_days(friday, 1).date() == date(2026, 12, 1)


def test_area_index_ranks_like_the_full_scan() -> None:
    import random

    from services.referral.matching import DirectoryIndex

    rng = random.Random(1)
    services = [
        svc(
            f"s{i:03d}",
            cat=rng.choice(list(ServiceCategory)),
            provinces=frozenset(rng.sample(["01", "31", "92"], rng.choice((0, 1, 2)))),
            wards=frozenset(rng.sample(["00070", "11560"], rng.choice((0, 1)))),
            capacity=rng.choice((None, 1, 5)),
        )
        for i in range(300)
    ]
    load = {s.service_id: rng.randrange(3) for s in services}
    index = DirectoryIndex(services)
    for category in ServiceCategory:
        for province, ward in (("01", None), ("01", "00070"), ("31", "11560"), ("92", None)):
            need = NeedToMatch(category, province, ward)
            assert index.rank(need, load) == rank(services, need, load)
