"""Referral rules: pure, no I/O. Which partner gets which need, and the referral it creates."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from shared.events import CaseOpened, Event, NeedUnmatched, ReferralRequested
from shared.vocab import ServiceCategory


@dataclass(frozen=True)
class Partner:
    id: str
    name: str
    province: str
    categories: frozenset[ServiceCategory]
    active: bool = True


def choose_partner(partners: Iterable[Partner], province: str, category: ServiceCategory) -> Partner | None:
    """An active partner in her province that offers the category; ties broken by id, so the
    choice is the same on every replica and every replay."""
    candidates = [p for p in partners if p.active and p.province == province and category in p.categories]
    return min(candidates, key=lambda p: p.id) if candidates else None


@dataclass
class Referral:
    id: str
    case_id: str
    partner_id: str
    province: str
    category: ServiceCategory
    requested_at: datetime
    status: str = "requested"
    events: list[Event] = field(default_factory=list)

    @classmethod
    def request(
        cls, *, referral_id: str, case_id: str, partner: Partner, category: ServiceCategory, at: datetime
    ) -> Referral:
        r = cls(referral_id, case_id, partner.id, partner.province, category, at)
        r.events.append(
            ReferralRequested(
                referral_id=r.id,
                case_id=case_id,
                partner_id=partner.id,
                province=r.province,
                category=category,
                requested_at=at,
            )
        )
        return r


def refer_new_case(
    opened: CaseOpened, partners: Iterable[Partner], new_id: Callable[[], str], at: datetime
) -> tuple[list[Referral], list[Event]]:
    """Referrals for each need of a newly opened case, and an event for each need no one can take.

    Nothing is referred without her consent to referral."""
    if not opened.consent.referral:
        return [], []
    pool = list(partners)
    referrals: list[Referral] = []
    unmatched: list[Event] = []
    for need in opened.needs:
        partner = choose_partner(pool, opened.province, need)
        if partner is None:
            unmatched.append(
                NeedUnmatched(
                    case_id=opened.case_id,
                    province=opened.province,
                    category=need,
                    reason="no active partner offers this category in her province",
                    at=at,
                )
            )
            continue
        referrals.append(
            Referral.request(
                referral_id=new_id(), case_id=opened.case_id, partner=partner, category=need, at=at
            )
        )
    return referrals, unmatched
