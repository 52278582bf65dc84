"""Internal reads by other services (service token only), each audited with its purpose."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.intake.api.models import ContactOut, SharedDetailsOut
from services.intake.casefile import CaseFiles, to_domain
from services.intake.domain.sharing import NothingConsented, shared_fields
from services.intake.protect import Protector
from shared.auth import Principal, Role, require
from shared.events import ContactChannel
from shared.http import ProblemError
from shared.runtime import Runtime
from shared.vocab import ServiceCategory


class NotConsented(ProblemError):
    status = 403
    title = "Not consented"


def build_router(rt: Runtime, protector: Protector) -> APIRouter:
    router = APIRouter(tags=["internal"])

    @router.get(
        "/internal/v1/cases/{case_id}/contact",
        response_model=ContactOut,
        responses={410: {"description": "the case was erased"}},
    )
    async def contact(
        case_id: str,
        who: Annotated[Principal, Depends(require(Role.SERVICE))],
        purpose: str = Query(min_length=1, max_length=100, pattern=r"^[a-z0-9_]+$"),
    ) -> ContactOut:
        """Her phone and the rules for contacting her, read by another service at send time. Audited;
        410 once she was erased."""
        async with rt.uow() as uow:
            files = CaseFiles(uow.session, protector)
            row = await files.row(case_id)
            identity = await files.identity(row)
            files.audit(who.audit_name, "read", row.id, ["phones"], purpose)
            await uow.commit()
        case = to_domain(row)
        prefs = case.contact
        channels = [
            c
            for c in prefs.channels
            if (c is ContactChannel.SMS and case.consent.sms)
            or (c is ContactChannel.ZALO and case.consent.zalo)
        ]
        return ContactOut(
            case_id=row.id,
            phone=identity.phones[0] if identity.phones else None,
            sms_consent=case.consent.sms and not prefs.do_not_contact,
            zalo_consent=case.consent.zalo and not prefs.do_not_contact,
            status=row.status,
            language=prefs.language,
            safe_hours_start=prefs.safe_hours_start,
            safe_hours_end=prefs.safe_hours_end,
            do_not_contact=prefs.do_not_contact,
            channels=[] if prefs.do_not_contact else channels,
        )

    @router.get(
        "/internal/v1/cases/{case_id}/shared",
        response_model=SharedDetailsOut,
        responses={
            403: {"description": "nothing consented for that category"},
            410: {"description": "erased"},
        },
    )
    async def shared(
        case_id: str,
        request: Request,
        who: Annotated[Principal, Depends(require(Role.SERVICE))],
        partner_category: ServiceCategory,
        purpose: str = Query(min_length=1, max_length=100, pattern=r"^[a-z0-9_]+$"),
        partner_id: str | None = Query(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$"),
        referral_id: str | None = Query(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    ) -> SharedDetailsOut:
        """What a partner she was referred to may read: only for a category she consented to, only
        the fields that partner needs. Audited with the partner the read is made for."""
        async with rt.uow() as uow:
            files = CaseFiles(uow.session, protector)
            row = await files.row(case_id)
            case = to_domain(row)
            try:
                fields = shared_fields(
                    await files.identity(row),
                    case.consent,
                    partner_category,
                    do_not_contact=case.contact.do_not_contact,
                )
            except NothingConsented as exc:
                raise NotConsented(str(exc)) from None
            on_behalf = (request.headers.get("x-osso-on-behalf-of") or f"partner:{partner_id or '?'}")[:60]
            why = f"{purpose}:{referral_id}" if referral_id else purpose
            files.audit(f"{who.audit_name}/{on_behalf}"[:100], "read", row.id, sorted(fields), why[:100])
            await uow.commit()
        return SharedDetailsOut(
            case_id=row.id,
            fields={k: str(v) for k, v in fields.items()},
            do_not_contact=case.contact.do_not_contact,
        )

    return router
