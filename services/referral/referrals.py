"""Orchestration shared by the event handlers, the HTTP routes and the overdue sweeper: load, call
the domain, persist, emit, all inside the caller's unit of work (commit is where events leave)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import select

from services.referral.calendar import WorkingCalendar
from services.referral.domain import CaseFacts, MatchPlan, match_needs
from services.referral.loop import OPEN_STATES, Referral, ReferralStatus
from services.referral.matching import NeedToMatch, rank
from services.referral.settings import ReferralSettings
from services.referral.store import (
    CaseRow,
    ReferralTaskRow,
    candidate_services,
    open_load,
    open_referrals,
    referrals_of_case,
)
from shared.events import Event, Need, NeedPriority
from shared.ids import new_id
from shared.uow import UnitOfWork
from shared.vocab import ServiceCategory

#: Reason codes of cancellations the platform makes by itself.
CONSENT_WITHDRAWN = "consent_withdrawn"
CASE_CLOSED = "case_closed"
CASE_ERASED = "case_erased"
REROUTED = "rerouted"
OVERDUE_REROUTED = "overdue_rerouted"


class Deadlines:
    """Acceptance and completion deadlines in working days, per category (Asia/Ho_Chi_Minh)."""

    def __init__(self, settings: ReferralSettings) -> None:
        self.settings = settings
        self.calendar = WorkingCalendar(public_holidays=settings.public_holidays)

    def accept_by(self, category: ServiceCategory, at: datetime) -> datetime:
        return self.calendar.add_working_days(at, self.settings.accept_days(category))

    def complete_by(self, category: ServiceCategory, at: datetime) -> datetime:
        return self.calendar.add_working_days(at, self.settings.complete_days(category))


def save(uow: UnitOfWork, referral: Referral, row: ReferralTaskRow | None = None) -> ReferralTaskRow:
    """Persist the referral's state and emit the events it recorded."""
    if row is None:
        row = ReferralTaskRow.from_domain(referral)
    else:
        row.update_from(referral)
    uow.session.add(row)
    uow.emit(*referral.events)
    referral.events.clear()
    return row


async def tried_partners(uow: UnitOfWork, case_id: str) -> dict[ServiceCategory, frozenset[str]]:
    """Partners already asked for each category of the case (not asked again when re-routing)."""
    tried: dict[ServiceCategory, set[str]] = {}
    for r in await referrals_of_case(uow.session, case_id):
        tried.setdefault(ServiceCategory(r.category), set()).add(r.partner_id)
    return {c: frozenset(p) for c, p in tried.items()}


async def refer_needs(
    uow: UnitOfWork,
    case: CaseFacts,
    needs: Sequence[Need],
    deadlines: Deadlines,
    at: datetime,
    *,
    exclude: dict[ServiceCategory, frozenset[str]] | None = None,
    rerouted_from: str | None = None,
) -> MatchPlan:
    """Match each need against the directory and record the referrals (or unmatched needs)."""
    services = []
    for category in dict.fromkeys(n.category for n in needs):
        services += await candidate_services(uow.session, category, case.province, case.ward)
    load = await open_load(uow.session, [s.service_id for s in services])
    plan = match_needs(
        case,
        needs,
        services,
        new_id=new_id,
        at=at,
        load=load,
        accept_by=deadlines.accept_by,
        exclude=exclude,
        rerouted_from=rerouted_from,
    )
    for r in plan.referrals:
        save(uow, r)
    uow.emit(*plan.unmatched)
    return plan


async def unreferred(uow: UnitOfWork, case_id: str, needs: Sequence[Need]) -> list[Need]:
    """The needs with no open or completed referral yet."""
    taken = {
        r.category
        for r in await referrals_of_case(uow.session, case_id)
        if ReferralStatus(r.status) in OPEN_STATES or r.status == ReferralStatus.COMPLETED
    }
    return [n for n in dict((n.category, n) for n in needs).values() if n.category.value not in taken]


async def cancel_open(
    uow: UnitOfWork, case_id: str, reason: str, at: datetime, by_role: str = "system"
) -> int:
    """Cancel every open referral of the case with ``reason``; returns how many."""
    n = 0
    for row in await open_referrals(uow.session, case_id):
        r = row.to_domain()
        if r.cancel(reason=reason, at=at, by_role=by_role) is not None:
            save(uow, r, row)
            n += 1
    return n


async def reroute(
    uow: UnitOfWork,
    row: ReferralTaskRow,
    case: CaseFacts,
    deadlines: Deadlines,
    at: datetime,
    *,
    reason: str,
    by_role: str,
    partner_id: str | None = None,
) -> Referral | None:
    """Cancel ``row`` (if open) and refer the same need to ``partner_id`` or the next-best partner
    not tried yet; returns the new referral, or None (and a NeedUnmatched) when none is left."""
    old = row.to_domain()
    old.cancel(reason=reason, at=at, by_role=by_role)
    save(uow, old, row)
    need = Need(category=old.category, priority=old.priority)
    if partner_id is not None:
        return await refer_by_hand(uow, case, need, partner_id, deadlines, at, rerouted_from=old.id)
    tried = await tried_partners(uow, case.case_id)
    plan = await refer_needs(uow, case, [need], deadlines, at, exclude=tried, rerouted_from=old.id)
    return plan.referrals[0] if plan.referrals else None


class NoSuchService(LookupError):
    """The partner has no active service of that category for her area."""


async def refer_by_hand(
    uow: UnitOfWork,
    case: CaseFacts,
    need: Need,
    partner_id: str,
    deadlines: Deadlines,
    at: datetime,
    *,
    rerouted_from: str | None = None,
) -> Referral:
    """A caseworker's choice of partner: it must offer the category, be active and serve her area
    (capacity and eligibility are the caseworker's call)."""
    services = await candidate_services(uow.session, need.category, case.province, case.ward)
    mine = [s for s in services if s.partner_id == partner_id and s.status == "active"]
    if not mine:
        raise NoSuchService(
            f"partner {partner_id} has no active {need.category.value} service in province {case.province}"
        )
    ranked = rank(mine, NeedToMatch(need.category, case.province, case.ward, language=case.language))
    service = ranked[0].service if ranked else sorted(mine, key=lambda s: s.service_id)[0]
    r = Referral.request(
        referral_id=new_id(),
        case_id=case.case_id,
        partner_id=partner_id,
        province=case.province,
        category=need.category,
        at=at,
        service_id=service.service_id,
        taxonomy_term=service.taxonomy_term,
        priority=need.priority,
        accept_by=deadlines.accept_by(need.category, at),
        manual=True,
        rerouted_from=rerouted_from,
    )
    save(uow, r)
    return r


async def sweep_overdue(
    uow: UnitOfWork, settings: ReferralSettings, deadlines: Deadlines, now: datetime, limit: int = 500
) -> list[Event]:
    """Mark late referrals overdue (once per stage) and re-route those not accepted in time when the
    case's setting allows. ``now`` is the clock: tests pass their own. Returns the events."""
    late = (
        (
            await uow.session.execute(
                select(ReferralTaskRow)
                .where(
                    ReferralTaskRow.status.in_(["requested", "accepted", "in_progress"]),  # type: ignore[attr-defined]
                    (
                        (ReferralTaskRow.status == "requested")
                        & (ReferralTaskRow.overdue_acceptance == False)  # noqa: E712
                        & (ReferralTaskRow.accept_by <= now)  # type: ignore[operator]
                    )
                    | (
                        (ReferralTaskRow.status != "requested")
                        & (ReferralTaskRow.overdue_completion == False)  # noqa: E712
                        & (ReferralTaskRow.complete_by <= now)  # type: ignore[operator]
                    ),
                )
                .order_by(ReferralTaskRow.requested_at)  # type: ignore[arg-type]
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    events: list[Event] = []
    for row in late:
        r = row.to_domain()
        overdue = r.check_overdue(now)
        if overdue is None:
            continue
        events.append(overdue)
        save(uow, r, row)
        if overdue.stage != "acceptance":
            continue
        case_row = await uow.session.get(CaseRow, r.case_id)
        if case_row is None:
            continue
        allowed = settings.auto_reroute if case_row.auto_reroute is None else case_row.auto_reroute
        if allowed and case_row.facts().may_refer(r.category):
            await reroute(
                uow, row, case_row.facts(), deadlines, now, reason=OVERDUE_REROUTED, by_role="system"
            )
    return events


def priority_of(value: str | None) -> NeedPriority:
    return NeedPriority(value) if value else NeedPriority.NORMAL
