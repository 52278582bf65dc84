"""Matching a need to partner services. Pure: the directory and the current load are passed in.

A service is a candidate when it is active, offers the need's category, serves her ward or her
province, meets the eligibility rules, has room (open referrals below capacity), and its partner
is not excluded (already tried for this need). Candidates are ranked: her ward before her
province, the requested taxonomy term first, the least loaded, then by id so the choice is the
same on every replica and every replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shared.vocab import ServiceCategory

ACTIVE = "active"
#: Taxonomy terms that house her (and her children): a service with these must accept children.
HOUSING_TERMS = frozenset({"shelter"})


@dataclass(frozen=True, slots=True)
class PartnerService:
    """What matching needs to know of one service of a partner organisation."""

    service_id: str
    partner_id: str
    category: ServiceCategory
    provinces: frozenset[str]
    wards: frozenset[str] = frozenset()
    taxonomy_term: str | None = None
    status: str = ACTIVE
    women_only: bool = False
    accepts_children: bool = True
    languages: frozenset[str] = frozenset({"vi"})
    #: Open referrals it can take at once; None means no limit.
    capacity: int | None = None


@dataclass(frozen=True, slots=True)
class NeedToMatch:
    """One need of one woman, with the facts eligibility looks at (no identifying data)."""

    category: ServiceCategory
    province: str
    ward: str | None = None
    taxonomy_term: str | None = None
    language: str = "vi"
    with_children: bool = False
    exclude_partners: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Match:
    service: PartnerService
    in_ward: bool
    load: int

    @property
    def partner_id(self) -> str:
        return self.service.partner_id


def why_not(service: PartnerService, need: NeedToMatch, load: int = 0) -> str | None:
    """The first reason ``service`` cannot take ``need``, or None when it can."""
    if service.category != need.category:
        return "category"
    if service.status != ACTIVE:
        return "not_active"
    if need.province not in service.provinces and not (need.ward and need.ward in service.wards):
        return "area"
    if service.partner_id in need.exclude_partners:
        return "excluded"
    if service.women_only and need.category is ServiceCategory.CHILDREN:
        return "eligibility_women_only"
    if need.with_children and not service.accepts_children:
        if need.category is ServiceCategory.CHILDREN or service.taxonomy_term in HOUSING_TERMS:
            return "eligibility_children"
    if need.language not in service.languages:
        return "eligibility_language"
    if service.capacity is not None and load >= service.capacity:
        return "capacity"
    return None


def rank(
    services: Iterable[PartnerService], need: NeedToMatch, load: Mapping[str, int] | None = None
) -> list[Match]:
    """Every service that can take ``need``, best first. ``load``: open referrals per service id."""
    load = load or {}
    matches: list[Match] = []
    category, province, ward = need.category, need.province, need.ward
    for s in services:
        # The two cheap, most selective checks first: 10,000 services in a few milliseconds.
        if s.category != category:
            continue
        in_ward = ward is not None and ward in s.wards
        if not in_ward and province not in s.provinces:
            continue
        n = load.get(s.service_id, 0)
        if why_not(s, need, n) is None:
            matches.append(Match(s, in_ward, n))
    term = need.taxonomy_term

    def key(m: Match) -> tuple[int, int, float, str]:
        cap = m.service.capacity
        return (
            0 if m.in_ward else 1,
            0 if term is None or m.service.taxonomy_term == term else 1,
            m.load / cap if cap else 0.0,
            m.service.service_id,
        )

    matches.sort(key=key)
    return matches


def best(
    services: Iterable[PartnerService], need: NeedToMatch, load: Mapping[str, int] | None = None
) -> Match | None:
    """The best service for ``need``, or None when no partner is available."""
    ranked = rank(services, need, load)
    return ranked[0] if ranked else None


class DirectoryIndex:
    """Services grouped by (category, province) and (category, ward), built once per directory
    version, so a need is ranked against the few services of its area instead of all of them (the
    service does the same cut in SQL, ``store.candidate_services``)."""

    def __init__(self, services: Iterable[PartnerService]) -> None:
        self._by_area: dict[tuple[ServiceCategory, str], list[PartnerService]] = {}
        for s in services:
            for area in (*s.provinces, *(f"w{w}" for w in s.wards)):
                self._by_area.setdefault((s.category, area), []).append(s)

    def candidates(self, need: NeedToMatch) -> list[PartnerService]:
        found = self._by_area.get((need.category, need.province), [])
        if need.ward:
            in_ward = self._by_area.get((need.category, f"w{need.ward}"), [])
            if in_ward:  # a service may serve both her province and her ward: once each
                found = list({s.service_id: s for s in (*found, *in_ward)}.values())
        return found

    def rank(self, need: NeedToMatch, load: Mapping[str, int] | None = None) -> list[Match]:
        return rank(self.candidates(need), need, load)
