"""Referral rules: pure, no I/O. Which partner gets which need of a case, and the referrals it creates.

The closed loop of one referral is in ``loop.py``, ranking in ``matching.py``, working days in
``calendar.py``; this module ties them to a case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.referral.loop import Referral, ReferralStatus
from services.referral.matching import NeedToMatch, PartnerService, best
from shared.events import CaseOpened, Event, Need, NeedPriority, NeedUnmatched
from shared.vocab import ServiceCategory

__all__ = [
    "CaseFacts",
    "Partner",
    "Referral",
    "ReferralStatus",
    "choose_partner",
    "match_needs",
    "refer_new_case",
]

NO_PARTNER = "no_partner_available"


class CaseNotKnownYet(LookupError):
    """A case event arrived before the case itself: retried later, not dropped."""


@dataclass(frozen=True)
class Partner:
    """A partner organisation as the walking skeleton knew it: one province, a set of categories."""

    id: str
    name: str
    province: str
    categories: frozenset[ServiceCategory]
    active: bool = True

    def services(self) -> list[PartnerService]:
        return [
            PartnerService(
                service_id=f"{self.id}:{c.value}",
                partner_id=self.id,
                category=c,
                provinces=frozenset({self.province}),
                status="active" if self.active else "inactive",
                languages=frozenset({"vi", "en"}),
            )
            for c in sorted(self.categories)
        ]


def choose_partner(partners: Iterable[Partner], province: str, category: ServiceCategory) -> Partner | None:
    """An active partner in her province that offers the category; ties broken by id."""
    by_id = {p.id: p for p in partners}
    m = best([s for p in by_id.values() for s in p.services()], NeedToMatch(category, province))
    return by_id[m.partner_id] if m else None


@dataclass(frozen=True)
class CaseFacts:
    """What referral knows of a case (from case events): codes and flags, nothing identifying."""

    case_id: str
    province: str
    ward: str | None = None
    consent_referral: bool = False
    #: Categories she agreed to be referred for; None means every category.
    referral_categories: frozenset[ServiceCategory] | None = None
    language: str = "vi"
    with_children: bool = False
    status: str = "open"

    def may_refer(self, category: ServiceCategory) -> bool:
        if not self.consent_referral or self.status in ("closed", "erased"):
            return False
        return self.referral_categories is None or category in self.referral_categories


@dataclass
class MatchPlan:
    referrals: list[Referral] = field(default_factory=list)
    unmatched: list[Event] = field(default_factory=list)
    #: Needs left alone because she did not consent to that category.
    not_consented: list[ServiceCategory] = field(default_factory=list)

    @property
    def events(self) -> list[Event]:
        return [e for r in self.referrals for e in r.events] + self.unmatched


def match_needs(
    case: CaseFacts,
    needs: Sequence[Need],
    services: Iterable[PartnerService],
    *,
    new_id: Callable[[], str],
    at: datetime,
    load: Mapping[str, int] | None = None,
    accept_by: Callable[[ServiceCategory, datetime], datetime | None] = lambda _c, _t: None,
    exclude: Mapping[ServiceCategory, frozenset[str]] | None = None,
    rerouted_from: str | None = None,
) -> MatchPlan:
    """Refer each need to the best partner service, or record that no partner is available.

    Nothing is referred without her consent to referral for that category. ``load`` counts open
    referrals per service and is updated as referrals are planned; ``exclude`` names partners
    already tried for a category (re-routing)."""
    plan = MatchPlan()
    pool = list(services)
    load = dict(load or {})
    for need in needs:
        if not case.may_refer(need.category):
            plan.not_consented.append(need.category)
            continue
        wanted = NeedToMatch(
            category=need.category,
            province=case.province,
            ward=case.ward,
            language=case.language,
            with_children=case.with_children,
            exclude_partners=(exclude or {}).get(need.category, frozenset()),
        )
        m = best(pool, wanted, load)
        if m is None:
            plan.unmatched.append(
                NeedUnmatched(
                    case_id=case.case_id,
                    province=case.province,
                    category=need.category,
                    reason=NO_PARTNER,
                    at=at,
                )
            )
            continue
        load[m.service.service_id] = load.get(m.service.service_id, 0) + 1
        plan.referrals.append(
            Referral.request(
                referral_id=new_id(),
                case_id=case.case_id,
                partner_id=m.partner_id,
                province=case.province,
                category=need.category,
                at=at,
                service_id=m.service.service_id,
                taxonomy_term=m.service.taxonomy_term,
                priority=need.priority,
                accept_by=accept_by(need.category, at),
                rerouted_from=rerouted_from,
            )
        )
    return plan


def needs_of(opened: CaseOpened) -> list[Need]:
    """The needs of a new case, with priorities when intake sent them."""
    if opened.assessed_needs:
        return list(opened.assessed_needs)
    return [Need(category=c, priority=NeedPriority.NORMAL) for c in dict.fromkeys(opened.needs)]


def facts_of(opened: CaseOpened, province: str) -> CaseFacts:
    consent = opened.consent
    cats = frozenset(consent.referral_categories) if consent.referral_categories is not None else None
    return CaseFacts(
        case_id=opened.case_id,
        province=province,
        ward=opened.ward,
        consent_referral=consent.referral,
        referral_categories=cats,
        language=opened.contact.language if opened.contact else "vi",
        with_children=bool(opened.profile and opened.profile.children_returned),
    )


def refer_new_case(
    opened: CaseOpened, partners: Iterable[Partner], new_id: Callable[[], str], at: datetime
) -> tuple[list[Referral], list[Event]]:
    """Referrals for each need of a newly opened case, and an event for each need no one can take."""
    services = [s for p in partners for s in p.services()]
    plan = match_needs(facts_of(opened, opened.province), needs_of(opened), services, new_id=new_id, at=at)
    return plan.referrals, plan.unmatched
