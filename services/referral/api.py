"""Referral's HTTP routes for caseworkers and partners: referrals, the loop, notes, her details.

A partner (token role ``partner``) sees its own referrals only: another partner's is a 404, and
it never sees the case file. Caseworkers and supervisors see referrals of their province.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import select

from services.referral.intake_client import IntakeDetails
from services.referral.loop import PARTNER_ACTIONS, STAFF_ACTIONS, Action, IllegalTransition, LoopError
from services.referral.matching import NeedToMatch, rank
from services.referral.referrals import REROUTED, Deadlines, NoSuchService, refer_by_hand, reroute, save
from services.referral.settings import ReferralSettings
from services.referral.store import (
    CaseRow,
    DetailsAccessRow,
    ReferralNoteRow,
    ReferralTaskRow,
    candidate_services,
    open_load,
)
from shared.auth import PROVINCE_ROLES, Forbidden, Principal, Role, require
from shared.events import CODE_PATTERN, Need, NeedPriority
from shared.http import ProblemError
from shared.runtime import Runtime
from shared.vocab import ServiceCategory


class ReferralNotFound(ProblemError):
    status = 404
    title = "Not Found"


class CaseNotFound(ProblemError):
    status = 404
    title = "Not Found"


class Conflict(ProblemError):
    status = 409
    title = "Conflict"


class Unprocessable(ProblemError):
    status = 422
    title = "Unprocessable"


class ReferralOut(BaseModel):
    id: str
    case_id: str
    partner_id: str
    service_id: str | None = None
    province: str
    category: ServiceCategory
    taxonomy_term: str | None = None
    priority: NeedPriority = NeedPriority.NORMAL
    status: str
    requested_at: datetime
    updated_at: datetime | None = None
    accept_by: datetime | None = None
    complete_by: datetime | None = None
    overdue: bool = False
    manual: bool = False
    rerouted_from: str | None = None
    reason: str | None = None
    outcome: str | None = None
    allowed_actions: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, row: ReferralTaskRow, who: Principal) -> ReferralOut:
        r = row.to_domain()
        actions = PARTNER_ACTIONS if who.role is Role.PARTNER else STAFF_ACTIONS
        return cls(
            id=r.id,
            case_id=r.case_id,
            partner_id=r.partner_id,
            service_id=r.service_id,
            province=r.province,
            category=r.category,
            taxonomy_term=r.taxonomy_term,
            priority=r.priority,
            status=r.status.value,
            requested_at=r.requested_at,
            updated_at=r.updated_at,
            accept_by=r.accept_by,
            complete_by=r.complete_by,
            overdue=r.overdue_acceptance or r.overdue_completion,
            manual=r.manual,
            rerouted_from=r.rerouted_from,
            reason=r.reason,
            outcome=r.outcome,
            allowed_actions=[a.value for a in r.allowed(actions)],
        )


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    reason: str | None = Field(default=None, pattern=CODE_PATTERN)
    outcome: str | None = Field(default=None, pattern=CODE_PATTERN)


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)


class NoteOut(BaseModel):
    at: datetime
    by: str
    text: str


class ManualReferralIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_id: str = Field(min_length=1, max_length=64)
    category: ServiceCategory
    partner_id: str = Field(min_length=1, max_length=64)
    priority: NeedPriority = NeedPriority.NORMAL


class RerouteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: A partner of the caseworker's choice; omitted: the next-best partner not tried yet.
    partner_id: str | None = Field(default=None, max_length=64)


class CaseSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auto_reroute: bool


class CandidateOut(BaseModel):
    partner_id: str
    service_id: str
    taxonomy_term: str | None
    in_ward: bool
    open_referrals: int
    capacity: int | None


class DetailsOut(BaseModel):
    referral_id: str
    fields: dict[str, str]
    do_not_contact: bool


READERS = require(Role.CASEWORKER, Role.SUPERVISOR, Role.CENTRAL_ADMIN, Role.PARTNER)
STAFF = require(Role.CASEWORKER, Role.SUPERVISOR, Role.CENTRAL_ADMIN)
DETAILS_STATES = ("accepted", "in_progress", "on_hold")


def _sees(who: Principal, row: ReferralTaskRow) -> bool:
    if who.role is Role.PARTNER:
        return row.partner_id == who.partner_id
    return who.sees_province(row.province)


def build_router(rt: Runtime, settings: ReferralSettings, intake: IntakeDetails) -> APIRouter:
    router = APIRouter()
    deadlines = Deadlines(settings)

    async def load(session: object, referral_id: str, who: Principal) -> ReferralTaskRow:
        row = await session.get(ReferralTaskRow, referral_id)  # type: ignore[attr-defined]
        if row is None or not _sees(who, row):
            raise ReferralNotFound(f"no referral {referral_id}")  # 404, not 403: existence must not leak
        return row  # type: ignore[no-any-return]

    async def load_case(session: object, case_id: str, who: Principal) -> CaseRow:
        case = await session.get(CaseRow, case_id)  # type: ignore[attr-defined]
        if case is None or case.status == "erased" or not who.sees_province(case.province):
            raise CaseNotFound(f"no case {case_id} known to referral")
        return case  # type: ignore[no-any-return]

    @router.get("/v1/referrals", response_model=list[ReferralOut], tags=["referrals"])
    async def list_referrals(
        who: Annotated[Principal, Depends(READERS)],
        partner_id: str | None = Query(default=None, max_length=64),
        case_id: str | None = Query(default=None, max_length=64),
        status: str | None = Query(default=None, max_length=16),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> list[ReferralOut]:
        query = select(ReferralTaskRow).order_by(ReferralTaskRow.requested_at).limit(limit)  # type: ignore[arg-type]
        if who.role is Role.PARTNER:
            partner_id = who.partner_id  # a partner sees its own referrals, whatever it asks for
        elif who.role in PROVINCE_ROLES:
            query = query.where(ReferralTaskRow.province == who.province)
        if partner_id:
            query = query.where(ReferralTaskRow.partner_id == partner_id)
        if case_id:
            query = query.where(ReferralTaskRow.case_id == case_id)
        if status:
            query = query.where(ReferralTaskRow.status == status)
        async with rt.sessions() as session:
            rows = (await session.execute(query)).scalars().all()
        return [ReferralOut.of(r, who) for r in rows]

    @router.get("/v1/referrals/{referral_id}", response_model=ReferralOut, tags=["referrals"])
    async def get_referral(referral_id: str, who: Annotated[Principal, Depends(READERS)]) -> ReferralOut:
        async with rt.sessions() as session:
            return ReferralOut.of(await load(session, referral_id, who), who)

    @router.post("/v1/referrals/{referral_id}/transitions", response_model=ReferralOut, tags=["referrals"])
    async def transition(
        referral_id: str, body: TransitionIn, who: Annotated[Principal, Depends(READERS)]
    ) -> ReferralOut:
        """Move the referral along the loop. A partner accepts, rejects (reason), starts, holds,
        resumes, completes (outcome) or fails (reason); the caseworker's side cancels (reason),
        holds and resumes. An illegal step is a 409 listing the allowed ones."""
        mine = PARTNER_ACTIONS if who.role is Role.PARTNER else STAFF_ACTIONS
        now = datetime.now(UTC)
        async with rt.uow() as uow:
            row = await load(uow.session, referral_id, who)
            r = row.to_domain()
            if body.action not in r.allowed():
                exc = IllegalTransition(r.status, body.action)
                raise Conflict(
                    str(exc),
                    status_now=r.status.value,
                    allowed=[a.value for a in exc.allowed],
                    allowed_for_you=[a.value for a in r.allowed(mine)],
                )
            if body.action not in mine:
                raise Forbidden(f"action: the {who.role.value} role may not {body.action.value} a referral")
            complete_by = deadlines.complete_by(r.category, now) if body.action is Action.ACCEPT else None
            try:
                r.act(
                    body.action,
                    at=now,
                    by_role=who.role.value,
                    reason=body.reason,
                    outcome=body.outcome,
                    complete_by=complete_by,
                )
            except LoopError as exc:
                raise Unprocessable(str(exc)) from None
            save(uow, r, row)
            await uow.commit()
            return ReferralOut.of(row, who)

    @router.post(
        "/v1/referrals/{referral_id}/notes", status_code=201, response_model=NoteOut, tags=["referrals"]
    )
    async def add_note(
        referral_id: str, body: NoteIn, who: Annotated[Principal, Depends(READERS)]
    ) -> NoteOut:
        """A progress note: the text stays here; the bus only hears that a note was added."""
        now = datetime.now(UTC)
        async with rt.uow() as uow:
            row = await load(uow.session, referral_id, who)
            r = row.to_domain()
            try:
                r.add_note(at=now, by_role=who.role.value)
            except LoopError as exc:
                raise Conflict(str(exc)) from None
            note = ReferralNoteRow(referral_id=r.id, at=now, by=who.audit_name, text=body.text)
            uow.session.add(note)
            save(uow, r, row)
            await uow.commit()
        return NoteOut(at=now, by=note.by, text=note.text)

    @router.get("/v1/referrals/{referral_id}/notes", response_model=list[NoteOut], tags=["referrals"])
    async def notes(referral_id: str, who: Annotated[Principal, Depends(READERS)]) -> list[NoteOut]:
        async with rt.sessions() as session:
            await load(session, referral_id, who)
            rows = (
                await session.execute(
                    select(ReferralNoteRow)
                    .where(ReferralNoteRow.referral_id == referral_id)
                    .order_by(ReferralNoteRow.at)  # type: ignore[arg-type]
                )
            ).scalars()
            return [NoteOut(at=n.at, by=n.by, text=n.text) for n in rows]

    @router.get("/v1/referrals/{referral_id}/her-details", response_model=DetailsOut, tags=["partners"])
    async def her_details(
        referral_id: str, request: Request, who: Annotated[Principal, Depends(require(Role.PARTNER))]
    ) -> DetailsOut:
        """Her details that she consented to share with partners of this category (e.g. first name
        and phone for a legal-aid call-back), read from intake on each call; every read is audited
        here and in intake. Only once the partner has accepted, and while the referral is open."""
        async with rt.sessions() as session:
            row = await load(session, referral_id, who)
            case = await session.get(CaseRow, row.case_id)
        if row.status not in DETAILS_STATES:
            raise Conflict(
                f"her details are shared once the referral is accepted and while it is open (it is {row.status})"
            )
        result, shared = "error", None
        try:
            client: IntakeDetails = getattr(request.app.state, "intake", intake)
            shared = await client.shared(
                case_id=row.case_id, category=row.category, partner_id=row.partner_id, referral_id=row.id
            )
            result = "ok"
        except ProblemError as exc:
            result = f"http_{exc.status}"
            raise
        finally:
            async with rt.sessions() as session, session.begin():
                session.add(
                    DetailsAccessRow(
                        at=datetime.now(UTC),
                        actor=who.audit_name,
                        referral_id=row.id,
                        case_id=row.case_id,
                        fields=",".join(sorted(shared.fields)) if shared else "",
                        result=result,
                    )
                )
        dnc = shared.do_not_contact or bool(case and case.do_not_contact)
        return DetailsOut(referral_id=row.id, fields=shared.fields, do_not_contact=dnc)

    @router.post("/v1/referrals", status_code=201, response_model=ReferralOut, tags=["referrals"])
    async def refer_manually(
        body: ManualReferralIn, who: Annotated[Principal, Depends(STAFF)]
    ) -> ReferralOut:
        """A caseworker refers a need by hand to a partner of her choice."""
        now = datetime.now(UTC)
        async with rt.uow() as uow:
            case = await load_case(uow.session, body.case_id, who)
            if not case.facts().may_refer(body.category):
                raise Conflict(f"category: she has not consented to referral for {body.category.value}")
            try:
                r = await refer_by_hand(
                    uow,
                    case.facts(),
                    Need(category=body.category, priority=body.priority),
                    body.partner_id,
                    deadlines,
                    now,
                )
            except NoSuchService as exc:
                raise Unprocessable(f"partner_id: {exc}") from None
            await uow.commit()
            row = await uow.session.get(ReferralTaskRow, r.id)
            assert row is not None
            return ReferralOut.of(row, who)

    @router.post(
        "/v1/referrals/{referral_id}/reroute", status_code=201, response_model=ReferralOut, tags=["referrals"]
    )
    async def reroute_referral(
        referral_id: str, body: RerouteIn, who: Annotated[Principal, Depends(STAFF)]
    ) -> ReferralOut:
        """Cancel this referral (reason ``rerouted``) and refer the need to the partner given, or to
        the next-best partner not tried yet for it."""
        now = datetime.now(UTC)
        async with rt.uow() as uow:
            row = await load(uow.session, referral_id, who)
            if not row.to_domain().is_open:
                raise Conflict(f"only an open referral can be re-routed (it is {row.status})")
            case = await load_case(uow.session, row.case_id, who)
            try:
                new = await reroute(
                    uow,
                    row,
                    case.facts(),
                    deadlines,
                    now,
                    reason=REROUTED,
                    by_role=who.role.value,
                    partner_id=body.partner_id,
                )
            except NoSuchService as exc:
                raise Unprocessable(f"partner_id: {exc}") from None
            if new is None:
                raise Conflict("no other partner is available for this need; the referral was not changed")
            await uow.commit()
            out = await uow.session.get(ReferralTaskRow, new.id)
            assert out is not None
            return ReferralOut.of(out, who)

    @router.put("/v1/cases/{case_id}/referral-settings", response_model=CaseSettingsIn, tags=["referrals"])
    async def case_settings(
        case_id: str, body: CaseSettingsIn, who: Annotated[Principal, Depends(STAFF)]
    ) -> CaseSettingsIn:
        """The caseworker's setting for this case: re-route overdue referrals automatically or not."""
        async with rt.uow() as uow:
            case = await load_case(uow.session, case_id, who)
            case.auto_reroute = body.auto_reroute
            uow.session.add(case)
            await uow.commit()
        return body

    @router.get("/v1/matches", response_model=list[CandidateOut], tags=["referrals"])
    async def matches(
        who: Annotated[Principal, Depends(STAFF)],
        case_id: str = Query(max_length=64),
        category: ServiceCategory = Query(),
    ) -> list[CandidateOut]:
        """Partners that could take this need of the case, best first (for a referral by hand)."""
        async with rt.sessions() as session:
            case = await load_case(session, case_id, who)
            facts = case.facts()
            services = await candidate_services(session, category, facts.province, facts.ward)
            load_by = await open_load(session, [s.service_id for s in services])
        need = NeedToMatch(
            category, facts.province, facts.ward, language=facts.language, with_children=facts.with_children
        )
        return [
            CandidateOut(
                partner_id=m.partner_id,
                service_id=m.service.service_id,
                taxonomy_term=m.service.taxonomy_term,
                in_ward=m.in_ward,
                open_referrals=m.load,
                capacity=m.service.capacity,
            )
            for m in rank(services, need, load_by)
        ]

    return router
