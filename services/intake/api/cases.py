"""Case routes: register (with duplicate detection), search, read, edit, consent, needs, sessions,
lifecycle and erasure. Every read or change of identifying data is audited."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Select, func, select

from services.intake.api.models import (
    CaseIn,
    CaseList,
    CaseOut,
    CasePatch,
    CaseSummary,
    ChildIn,
    ChildOut,
    CloseIn,
    ConsentOut,
    ConsentPut,
    ConsentRecordOut,
    ContactIn,
    NeedOut,
    NeedsIn,
    SessionIn,
    SessionOut,
    StoryIn,
    WomanIn,
    WomanOut,
)
from services.intake.casefile import CaseFiles, audit_values, profile_of, row_values, to_domain, write_back
from services.intake.domain import (
    DUPLICATE_KINDS,
    Address,
    Case,
    ChildIdentity,
    Consent,
    DomainError,
    Identity,
    IllegalTransition,
    name_tokens,
    normalise_cccd,
)
from services.intake.protect import Protector
from services.intake.registration import Registrar, Registration
from services.intake.store import (
    CaseRow,
    ConsentRecordRow,
    SessionRow,
    cases,
    cases_with_all_tokens,
    consents_t,
    lookups,
    matching_cases,
    sessions_t,
)
from shared.auth import Forbidden, Principal, Role, require
from shared.events import CaseStatus, ConsentPurpose, ContactPreferences, Need, TraffickingStatus
from shared.http import ProblemError
from shared.ids import new_id
from shared.phones import InvalidPhone, mask, to_e164
from shared.runtime import Runtime
from shared.uow import UnitOfWork, outbox_rows
from shared.vntext import fold
from shared.vocab import Channel, ServiceCategory

CASE_STAFF = require(Role.CASEWORKER, Role.SUPERVISOR, Role.CENTRAL_ADMIN)
ERASERS = require(Role.SUPERVISOR, Role.CENTRAL_ADMIN)
Staff = Annotated[Principal, Depends(CASE_STAFF)]


class Unprocessable(ProblemError):
    status = 422
    title = "Invalid request"


class Conflict(ProblemError):
    status = 409
    title = "Conflict"
    title_vi = "Xung đột trạng thái"


def _domain_problem(exc: DomainError) -> ProblemError:
    if isinstance(exc, IllegalTransition):
        return Conflict(str(exc))
    return Unprocessable(str(exc))


def _identity(
    woman: WomanIn | None, phone: str | None, notes: str | None, children: list[ChildIn]
) -> Identity:
    w = woman or WomanIn()
    phones = list(dict.fromkeys(([phone] if phone else []) + w.phones))
    address = w.address
    return Identity(
        full_name=w.full_name,
        birth_date=w.birth_date,
        birth_year=w.birth_year,
        phones=phones,
        cccd=w.cccd,
        address=Address(ward=address.ward, line=address.line) if address else Address(),
        notes=notes,
        children=[ChildIdentity(name=c.name) for c in children],
    )


def _story(story: StoryIn | None) -> dict[str, Any]:
    return story.model_dump(mode="json", exclude={"notes"}) if story else {}


def _children(children: list[ChildIn]) -> list[dict[str, Any]]:
    return [c.model_dump(mode="json", exclude={"name"}) for c in children]


def _contact(contact: ContactIn | None) -> ContactPreferences:
    return ContactPreferences(**contact.model_dump()) if contact else ContactPreferences()


def _consent_out(case: Case) -> ConsentOut:
    c = case.consent
    cats = list(c.referral_categories) if c.referral_categories is not None else None
    return ConsentOut(
        referral=c.referral, sms=c.sms, zalo=c.zalo, statistics=c.statistics, referral_categories=cats
    )


def case_out(row: CaseRow, identity: Identity | None, *, address_province: str | None = None) -> CaseOut:
    return case_view(to_domain(row), row.story, row.children, row.updated_at, identity)


def case_view(
    case: Case,
    story_in: dict[str, Any] | None,
    children_in: list[dict[str, Any]],
    updated_at: datetime,
    identity: Identity | None,
) -> CaseOut:
    """What the API shows of a case: its categories, and her identity when given (read and audited
    by the caller)."""
    phone = identity.phones[0] if identity and identity.phones else None
    woman = None
    children = [ChildOut(**c) for c in children_in]
    if identity is not None:
        woman = WomanOut(
            full_name=identity.full_name,
            birth_date=identity.birth_date,
            birth_year=identity.year_of_birth,
            phones=identity.phones,
            cccd=identity.cccd,
            address={"ward": identity.address.ward, "line": identity.address.line}
            if identity.address.ward or identity.address.line
            else None,
            age_band=case.profile.age_band,
        )
        for child, child_id in zip(children, identity.children, strict=False):
            child.name = child_id.name
    story = dict(story_in or {})
    if identity is not None and identity.notes:
        story["notes"] = identity.notes
    return CaseOut(
        id=case.id,
        province=case.province,
        channel=case.channel,
        needs=case.needs,
        assessed_needs=[NeedOut(category=n.category, priority=n.priority) for n in case.assessed_needs],
        consent=_consent_out(case),
        status=CaseStatus(case.status),
        close_reason=case.close_reason,
        opened_at=case.opened_at,
        updated_at=updated_at,
        phone_masked=mask(phone) if phone else None,
        woman=woman,
        story=story or None,
        children=children,
        contact=ContactIn(**case.contact.model_dump()),
    )


def _visible_provinces(who: Principal) -> list[str] | None:
    """None = every province."""
    if who.role in (Role.CENTRAL_ADMIN, Role.SERVICE):
        return None
    return [who.province] if who.province else []


async def _save(uow: UnitOfWork, case: Case, row: CaseRow, now: datetime) -> None:
    """Write the case back to its row and commit it with the events the change raised."""
    write_back(case, row, now)
    uow.session.add(row)
    uow.emit(*case.events)
    await uow.commit()


def build_router(rt: Runtime, protector: Protector) -> APIRouter:
    router = APIRouter(tags=["cases"])
    registrar = Registrar(rt)

    async def _load(files: CaseFiles, case_id: str, who: Principal) -> tuple[CaseRow, Case]:
        row = await files.row(case_id, who.sees_province)
        return row, to_domain(row)

    # -- register --------------------------------------------------------------------------------
    @router.post(
        "/v1/cases",
        status_code=201,
        response_model=CaseOut,
        responses={409: {"description": "possible duplicate: candidate case ids in `candidates`"}},
    )
    async def open_case(body: CaseIn, who: Staff) -> CaseOut:
        """Register a case. Same CCCD, or same folded name and birth year in the province, is a
        possible duplicate: 409 with the candidate ids the caller may see, unless
        ``confirm_not_duplicate``. A shared phone number is reported in ``possible_duplicates``."""
        if not who.sees_province(body.province):
            raise Forbidden(f"province: you may register cases in province {who.province} only")
        now = datetime.now(UTC)
        identity = _identity(body.woman, body.phone, body.story.notes if body.story else None, body.children)
        story = _story(body.story)
        case_id = new_id()
        try:
            case = Case.open(
                case_id=case_id,
                province=body.province,
                channel=body.channel,
                needs=body.needs,
                consent=Consent(
                    referral=body.consent.referral,
                    sms=body.consent.sms,
                    zalo=body.consent.zalo,
                    statistics=body.consent.statistics,
                    referral_categories=tuple(body.consent.referral_categories)
                    if body.consent.referral_categories is not None
                    else None,
                ),
                has_phone=bool(identity.phones),
                ward=identity.address.ward,
                at=now,
                priorities=body.priorities,
                profile=profile_of(story, identity.year_of_birth, len(body.children), now.date()),
                contact=_contact(body.contact),
            )
        except DomainError as exc:
            raise _domain_problem(exc) from None
        children = _children(body.children)
        key, wrapped = protector.new_case_key(case.id)
        values = row_values(case, story, children, protector.seal_identity(key, identity))
        filled = identity.filled_fields()
        pairs = protector.lookup_pairs(identity, case.province)  # each keyed hash computed once
        item = Registration(
            case_id=case.id,
            province=case.province,
            visible=_visible_provinces(who),
            confirm_not_duplicate=body.confirm_not_duplicate,
            duplicate_pairs=[pair for pair in pairs if pair[0] in DUPLICATE_KINDS],
            lookup_pairs=pairs,
            case_values=values,
            key_values={"case_id": case.id, "wrapped_key": wrapped, "created_at": now},
            consent_values=[
                {
                    "case_id": case.id,
                    "purpose": purpose.value,
                    "granted": case.consent.granted(purpose),
                    "referral_categories": values["referral_categories"]
                    if purpose is ConsentPurpose.REFERRAL
                    else None,
                    "recorded_by": who.role.value,
                    "actor": who.audit_name,
                    "at": now,
                }
                for purpose in ConsentPurpose
            ],
            audit_values=audit_values(who.audit_name, "create", case.id, filled, "registration")
            if filled
            else None,
            outbox=outbox_rows(*case.events),
        )
        candidates = await registrar.register(item)
        out = case_view(case, story, children, now, identity)
        out.possible_duplicates = candidates
        return out

    # -- search ------------------------------------------------------------------------------------
    @router.get("/v1/cases", response_model=CaseList)
    async def search_cases(
        who: Staff,
        q: str | None = Query(
            default=None, min_length=1, max_length=120, description="phone, CCCD (exact) or name (folded)"
        ),
        province: str | None = Query(default=None, pattern=r"^\d{2}$"),
        status: CaseStatus | None = None,
        channel: Channel | None = None,
        need: ServiceCategory | None = None,
        trafficking_status: TraffickingStatus | None = None,
        opened_from: date | None = None,
        opened_to: date | None = None,
        limit: int = Query(default=20, ge=1, le=100),
        offset: int = Query(default=0, ge=0, le=100_000),
    ) -> CaseList:
        """Cases the caller may see. ``q`` is matched through keyed hashes only: a phone or CCCD
        exactly, a name by its folded words (case, diacritics, NFC/NFD, đ/d, "Hoà"/"Hòa")."""
        provinces = _visible_provinces(who)
        if province is not None:
            provinces = [province] if provinces is None or province in provinces else []
        if provinces == []:
            return CaseList(items=[], total=0, limit=limit, offset=offset)
        ids: list[str] | Select[Any] | None = None
        async with rt.uow() as uow:
            session = uow.session
            if q is not None:
                ids = await _match_query(session, q, provinces)
                if ids is None or ids == []:
                    return CaseList(items=[], total=0, limit=limit, offset=offset)
            conds: list[Any] = [cases.c.erased_at.is_(None)]
            if provinces is not None:
                conds.append(cases.c.province.in_(provinces))
            if ids is not None:
                conds.append(cases.c.id.in_(ids))
            if status is not None:
                conds.append(cases.c.status == status.value)
            if channel is not None:
                conds.append(cases.c.channel == channel.value)
            if need is not None:
                conds.append(cases.c.needs.contains(need.value))
            if opened_from is not None:
                conds.append(cases.c.opened_at >= datetime.combine(opened_from, datetime.min.time(), UTC))
            if opened_to is not None:
                conds.append(cases.c.opened_at < datetime.combine(opened_to, datetime.max.time(), UTC))
            if trafficking_status is not None:
                conds.append(cases.c.story["trafficking_status"].as_string() == trafficking_status.value)
            filtered = (status, channel, need, opened_from, opened_to, trafficking_status) != (None,) * 6
            if isinstance(ids, Select) and not filtered:
                # Only a name (and her provinces): one lookup row per case found, in her case's
                # province, and none for an erased case, so the count reads no case row (for a
                # common word, thousands of them).
                count = select(func.count()).select_from(ids.subquery())
            else:
                count = select(func.count()).select_from(cases).where(*conds)
            total = (await session.execute(count)).scalar_one()
            rows = (
                (
                    await session.execute(
                        select(CaseRow)
                        .where(*conds)
                        .order_by(cases.c.opened_at.desc(), cases.c.id)
                        .limit(limit)
                        .offset(offset)
                    )
                )
                .scalars()
                .all()
            )
            files = CaseFiles(session, protector)
            items = []
            for row, identity in zip(rows, await files.identities(list(rows)), strict=True):
                phone = identity.phones[0] if identity.phones else None
                items.append(
                    CaseSummary(
                        id=row.id,
                        province=row.province,
                        status=CaseStatus(row.status),
                        channel=Channel(row.channel),
                        opened_at=row.opened_at,
                        full_name=identity.full_name,
                        birth_year=identity.year_of_birth,
                        phone_masked=mask(phone) if phone else None,
                        needs=[ServiceCategory(n) for n in row.needs.split(",") if n],
                    )
                )
                if identity.full_name or phone:
                    files.audit(who.audit_name, "search", row.id, ["full_name", "phones"], "case_search")
            await uow.commit()
        return CaseList(items=items, total=total, limit=limit, offset=offset)

    async def _match_query(
        session: Any, q: str, provinces: list[str] | None
    ) -> list[str] | Select[Any] | None:
        """The cases ``q`` finds: a list of ids, or a query of them for name words."""
        text = q.strip()
        digits = "".join(ch for ch in text if ch.isdigit())
        pairs: list[tuple[str, str]] = []
        if digits and len(digits) >= 9 and not any(ch.isalpha() for ch in text):
            if len(digits) == 12:
                try:
                    pairs.append(("cccd", protector.index.digest(normalise_cccd(text), "cccd")))
                except ValueError:
                    pass
            try:
                pairs.append(("phone", protector.phone_index(to_e164(text))))
            except InvalidPhone:
                pass
            if not pairs:
                return []
            return list(await matching_cases(session, pairs, provinces))
        tokens = name_tokens(text)
        if not tokens:
            return []
        if len(tokens) > 1:
            full = select(lookups.c.case_id).where(
                lookups.c.kind == "name",
                lookups.c.digest == protector.index.digest(fold(text), "name"),
            )
            if provinces is not None:
                full = full.where(lookups.c.province.in_(provinces))
            if (await session.execute(full.limit(1))).first() is not None:
                return full
        return await cases_with_all_tokens(
            session, [protector.index.digest(t, "name_token") for t in tokens], provinces
        )

    # -- one case ------------------------------------------------------------------------------------
    @router.get("/v1/cases/{case_id}", response_model=CaseOut)
    async def get_case(case_id: str, who: Staff) -> CaseOut:
        async with rt.uow() as uow:
            files = CaseFiles(uow.session, protector)
            row = await files.row(case_id, who.sees_province)
            identity = await files.identity(row)
            if identity.filled_fields():
                files.audit(who.audit_name, "read", row.id, identity.filled_fields(), "case_view")
            await uow.commit()
        return case_out(row, identity)

    @router.patch("/v1/cases/{case_id}", response_model=CaseOut)
    async def update_case(case_id: str, body: CasePatch, who: Staff) -> CaseOut:
        """Replace parts of the case file; her profile categories and contact rules go out as
        ``case.updated``. Identity changes are re-sealed and re-indexed, and audited."""
        now = datetime.now(UTC)
        async with rt.uow() as uow:
            files = CaseFiles(uow.session, protector)
            row, case = await _load(files, case_id, who)
            identity = await files.identity(row)
            changed: list[str] = []
            if body.woman is not None:
                new = _identity(body.woman, None, identity.notes, [])
                new.children = identity.children
                identity = new
                changed.append("woman")
            if body.story is not None:
                row.story = _story(body.story)
                identity.notes = body.story.notes
                changed.append("story")
            if body.children is not None:
                row.children = _children(body.children)
                identity.children = [ChildIdentity(name=c.name) for c in body.children]
                changed.append("children")
            if not changed and body.contact is None:
                raise Unprocessable("body: nothing to change")
            try:
                case.phone_changed(bool(identity.phones))
                case.update(
                    at=now,
                    profile=profile_of(row.story, identity.year_of_birth, len(row.children), now.date()),
                    contact=_contact(body.contact) if body.contact is not None else None,
                )
            except DomainError as exc:
                raise _domain_problem(exc) from None
            if changed:
                await files.store_identity(row, identity)
                files.audit(who.audit_name, "update", row.id, changed, "case_update")
            await _save(uow, case, row, now)
        return case_out(row, identity)

    # -- consent ----------------------------------------------------------------------------------
    @router.put("/v1/cases/{case_id}/consents", response_model=CaseOut)
    async def put_consents(case_id: str, body: ConsentPut, who: Staff) -> CaseOut:
        """Give or withdraw consent per purpose (and partner categories for referral); each change
        is recorded with who and when, and goes out as ``case.consent_changed``."""
        now = datetime.now(UTC)
        values = body.model_dump(exclude_unset=True, exclude={"referral_categories"})
        if not values and "referral_categories" not in body.model_fields_set:
            raise Unprocessable("body: give at least one purpose")
        async with rt.uow() as uow:
            files = CaseFiles(uow.session, protector)
            row, case = await _load(files, case_id, who)
            try:
                for purpose in ConsentPurpose:
                    granted = values.get(purpose.value)
                    cats = None
                    if purpose is ConsentPurpose.REFERRAL:
                        if granted is None and "referral_categories" not in body.model_fields_set:
                            continue
                        granted = case.consent.referral if granted is None else granted
                        cats = body.referral_categories
                    elif granted is None:
                        continue
                    if case.set_consent(
                        purpose, granted, recorded_by=who.role.value, at=now, referral_categories=cats
                    ):
                        uow.session.add(
                            ConsentRecordRow(
                                case_id=case.id,
                                purpose=purpose.value,
                                granted=granted,
                                referral_categories=",".join(c.value for c in cats)
                                if cats is not None
                                else None,
                                recorded_by=who.role.value,
                                actor=who.audit_name,
                                at=now,
                            )
                        )
            except DomainError as exc:
                raise _domain_problem(exc) from None
            await _save(uow, case, row, now)
        return case_out(row, None)

    @router.get("/v1/cases/{case_id}/consents", response_model=list[ConsentRecordOut])
    async def consent_history(case_id: str, who: Staff) -> list[ConsentRecordOut]:
        async with rt.uow() as uow:
            await CaseFiles(uow.session, protector).row(case_id, who.sees_province, allow_erased=True)
            rows = (
                await uow.session.execute(
                    select(ConsentRecordRow).where(consents_t.c.case_id == case_id).order_by(consents_t.c.id)
                )
            ).scalars()
            return [
                ConsentRecordOut(
                    purpose=r.purpose,
                    granted=r.granted,
                    referral_categories=[ServiceCategory(c) for c in r.referral_categories.split(",") if c]
                    if r.referral_categories is not None
                    else None,
                    recorded_by=r.recorded_by,
                    actor=r.actor,
                    at=r.at,
                )
                for r in rows
            ]

    # -- needs, sessions, lifecycle ----------------------------------------------------------------------
    @router.post("/v1/cases/{case_id}/needs", response_model=CaseOut)
    async def assess_needs(case_id: str, body: NeedsIn, who: Staff) -> CaseOut:
        now = datetime.now(UTC)
        async with rt.uow() as uow:
            files = CaseFiles(uow.session, protector)
            row, case = await _load(files, case_id, who)
            try:
                case.assess_needs([Need(category=n.category, priority=n.priority) for n in body.needs], now)
            except DomainError as exc:
                raise _domain_problem(exc) from None
            await _save(uow, case, row, now)
        return case_out(row, None)

    @router.post("/v1/cases/{case_id}/sessions", status_code=201, response_model=SessionOut)
    async def record_session(case_id: str, body: SessionIn, who: Staff) -> SessionOut:
        """A counselling session (walk-in, hotline 1800 599967, online, outreach, handover); the
        first one makes an open case active."""
        now = datetime.now(UTC)
        session_id = new_id()
        async with rt.uow() as uow:
            files = CaseFiles(uow.session, protector)
            row, case = await _load(files, case_id, who)
            try:
                case.record_session(
                    session_id=session_id,
                    channel=body.channel,
                    topics=body.topics,
                    duration_minutes=body.duration_minutes,
                    held_on=body.held_on,
                    at=now,
                )
            except DomainError as exc:
                raise _domain_problem(exc) from None
            notes_enc = None
            if body.notes:
                key = await files.key(case.id)
                assert key is not None
                notes_enc = key.seal(body.notes.encode(), f"session:{session_id}:notes")
                files.audit(who.audit_name, "create", case.id, ["session.notes"], "counselling")
            srow = SessionRow(
                id=session_id,
                case_id=case.id,
                province=case.province,
                held_on=body.held_on,
                channel=body.channel.value,
                topics=",".join(dict.fromkeys(t.value for t in body.topics)),
                duration_minutes=body.duration_minutes,
                counsellor=body.counsellor,
                notes_enc=notes_enc,
                recorded_by=who.audit_name,
                recorded_at=now,
            )
            uow.session.add(srow)
            await _save(uow, case, row, now)
        return _session_out(srow)

    @router.get("/v1/cases/{case_id}/sessions", response_model=list[SessionOut])
    async def list_sessions(case_id: str, who: Staff) -> list[SessionOut]:
        async with rt.uow() as uow:
            await CaseFiles(uow.session, protector).row(case_id, who.sees_province, allow_erased=True)
            rows = (
                await uow.session.execute(
                    select(SessionRow).where(sessions_t.c.case_id == case_id).order_by(sessions_t.c.held_on)
                )
            ).scalars()
            return [_session_out(r) for r in rows]

    async def _transition(case_id: str, who: Principal, change: Any) -> CaseOut:
        now = datetime.now(UTC)
        async with rt.uow() as uow:
            files = CaseFiles(uow.session, protector)
            row, case = await _load(files, case_id, who)
            try:
                change(case, now)
            except DomainError as exc:
                raise _domain_problem(exc) from None
            await _save(uow, case, row, now)
        return case_out(row, None)

    @router.post("/v1/cases/{case_id}/close", response_model=CaseOut)
    async def close_case(case_id: str, body: CloseIn, who: Staff) -> CaseOut:
        return await _transition(case_id, who, lambda case, now: case.close(body.reason, now))

    @router.post("/v1/cases/{case_id}/reopen", response_model=CaseOut)
    async def reopen_case(case_id: str, who: Staff) -> CaseOut:
        return await _transition(case_id, who, lambda case, now: case.reopen(now))

    @router.post("/v1/cases/{case_id}/activate", response_model=CaseOut)
    async def activate_case(case_id: str, who: Staff) -> CaseOut:
        return await _transition(case_id, who, lambda case, now: case.activate(now))

    # -- erasure -----------------------------------------------------------------------------------------
    @router.delete("/v1/cases/{case_id}", status_code=204)
    async def erase_case(case_id: str, who: Annotated[Principal, Depends(ERASERS)]) -> None:
        """Erase her identifying data for good (the case's key is destroyed); the categories stay
        so that aggregates stay right. Emits ``case.erased``."""
        now = datetime.now(UTC)
        async with rt.uow() as uow:
            files = CaseFiles(uow.session, protector)
            row, case = await _load(files, case_id, who)
            case.erase(now)
            await files.shred(row, now)
            files.audit(who.audit_name, "erase", row.id, ["identity", "session.notes"], "erasure")
            await _save(uow, case, row, now)

    return router


def _session_out(r: SessionRow) -> SessionOut:
    return SessionOut(
        id=r.id,
        case_id=r.case_id,
        held_on=r.held_on,
        channel=Channel(r.channel),
        topics=[ServiceCategory(t) for t in r.topics.split(",") if t],
        duration_minutes=r.duration_minutes,
        counsellor=r.counsellor,
        recorded_at=r.recorded_at,
    )
