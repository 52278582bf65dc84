"""Referral's event subscribers.

- ``referral-case-opened`` (``osso.case.*.opened``): refer each need of a new case.
- ``referral-case-events`` (``osso.case.>``, every other case event): needs assessed later, consent,
  case status, erasure, contact preferences. An event about a case not seen yet is retried (the
  opened event may still be on its way through the other consumer), except an erasure, which
  leaves a tombstone so a late ``case.opened`` refers nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from faststream.nats import NatsRouter

from services.referral.domain import CaseNotKnownYet, facts_of, needs_of
from services.referral.referrals import (
    CASE_CLOSED,
    CASE_ERASED,
    CONSENT_WITHDRAWN,
    Deadlines,
    cancel_open,
    refer_needs,
    unreferred,
)
from services.referral.settings import ReferralSettings
from services.referral.store import CaseRow, categories_csv
from shared.envelope import Envelope
from shared.events import (
    CaseErased,
    CaseOpened,
    CaseStatus,
    CaseStatusChanged,
    CaseUpdated,
    ConsentChanged,
    ConsentPurpose,
    NeedsAssessed,
)
from shared.provinces import SCHEME_2025, resolve_province
from shared.runtime import Runtime
from shared.streams import CASE
from shared.uow import UnitOfWork


class CaseHandlers:
    def __init__(self, settings: ReferralSettings) -> None:
        self.settings = settings
        self.deadlines = Deadlines(settings)

    async def case_opened(self, uow: UnitOfWork, env: Envelope) -> None:
        """Record what referral needs of the case, then refer each need (or report it unmatched)."""
        opened = env.data
        assert isinstance(opened, CaseOpened)
        existing = await uow.session.get(CaseRow, opened.case_id)
        if existing is not None and existing.status == "erased":
            return  # erased before we saw it opened: nothing to refer
        province = resolve_province(opened.province, opened.province_scheme or SCHEME_2025).code
        facts = facts_of(opened, province)
        now = datetime.now(UTC)
        row = existing or CaseRow(case_id=opened.case_id, province=province, updated_at=now)
        row.province = province
        row.ward = facts.ward
        row.consent_referral = facts.consent_referral
        row.referral_categories = categories_csv(facts.referral_categories)
        row.language = facts.language
        row.with_children = facts.with_children
        row.do_not_contact = bool(opened.contact and opened.contact.do_not_contact)
        row.updated_at = now
        uow.session.add(row)
        await refer_needs(
            uow, facts, await unreferred(uow, opened.case_id, needs_of(opened)), self.deadlines, now
        )

    async def case_event(self, uow: UnitOfWork, env: Envelope) -> None:
        event = env.data
        now = datetime.now(UTC)
        if isinstance(event, CaseOpened) or not isinstance(
            event, CaseErased | ConsentChanged | CaseStatusChanged | NeedsAssessed | CaseUpdated
        ):
            return  # opened: the other consumer; sessions and the rest: nothing for referral
        row = await uow.session.get(CaseRow, event.case_id)
        if isinstance(event, CaseErased):
            if row is None:
                row = CaseRow(case_id=event.case_id, province=event.province, updated_at=now)
            await cancel_open(uow, event.case_id, CASE_ERASED, now)
            row.status = "erased"
            row.updated_at = now
            uow.session.add(row)
            return
        if row is None:
            raise CaseNotKnownYet(f"case {event.case_id} not known yet; retried")
        if row.status == "erased":
            return
        if isinstance(event, ConsentChanged):
            if event.purpose is not ConsentPurpose.REFERRAL:
                return
            row.consent_referral = event.granted
            row.referral_categories = categories_csv(event.referral_categories) if event.granted else None
            if not event.granted:
                await cancel_open(uow, event.case_id, CONSENT_WITHDRAWN, now)
            elif event.referral_categories is not None:
                # Narrowed consent: referrals of categories she no longer agrees to are cancelled.
                await self._cancel_outside(uow, row, now)
        elif isinstance(event, CaseStatusChanged):
            row.status = event.to_status.value
            if event.to_status is CaseStatus.CLOSED:
                await cancel_open(uow, event.case_id, CASE_CLOSED, now)
        elif isinstance(event, CaseUpdated):
            if event.contact is not None:
                row.language = event.contact.language
                row.do_not_contact = event.contact.do_not_contact
            if event.profile is not None:
                row.with_children = bool(event.profile.children_returned)
        elif isinstance(event, NeedsAssessed):
            row.updated_at = now
            uow.session.add(row)
            await refer_needs(
                uow, row.facts(), await unreferred(uow, event.case_id, event.needs), self.deadlines, now
            )
            return
        row.updated_at = now
        uow.session.add(row)

    async def _cancel_outside(self, uow: UnitOfWork, row: CaseRow, now: datetime) -> None:
        from services.referral.referrals import save
        from services.referral.store import open_referrals

        facts = row.facts()
        for r_row in await open_referrals(uow.session, row.case_id):
            r = r_row.to_domain()
            if not facts.may_refer(r.category) and r.cancel(
                reason=CONSENT_WITHDRAWN, at=now, by_role="system"
            ):
                save(uow, r, r_row)


def build_router(rt: Runtime, settings: ReferralSettings) -> NatsRouter:
    router = NatsRouter()
    handlers = CaseHandlers(settings)
    case_opened = rt.event_consumer("referral-case-opened", CASE.name, handlers.case_opened)
    case_events = rt.event_consumer("referral-case-events", CASE.name, handlers.case_event)

    rt.subscribe(
        router,
        "osso.case.*.opened",
        case_opened,
        "case.opened -> referral.requested per need (or referral.unmatched)",
        name="on_case_opened",
    )
    rt.subscribe(
        router,
        "osso.case.>",
        case_events,
        "needs_assessed -> match needs not yet referred; consent_changed(referral, withdrawn), "
        "status_changed(closed), erased -> open referrals cancelled with that reason",
        name="on_case_event",
    )
    return router
