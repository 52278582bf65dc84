"""Intake's HTTP routes: caseworkers register and read cases; services read contact data, audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.intake.domain import Case, Consent, DomainError
from services.intake.protect import Protector
from services.intake.store import AuditRow, CaseRow
from shared.auth import Forbidden, Principal, Role, require
from shared.http import ProblemError
from shared.phones import InvalidPhone, mask, to_e164
from shared.provinces import SCHEME_2025, UnknownProvince, resolve_province
from shared.runtime import Runtime
from shared.vocab import Channel, ServiceCategory


class CaseNotFound(ProblemError):
    status = 404
    title = "Case not found"


class Unprocessable(ProblemError):
    status = 422
    title = "Invalid request"


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    referral: bool = Field(description="She agrees to be referred to partner organisations")
    sms: bool = Field(description="She agrees to be contacted by SMS")


class CaseIn(BaseModel):
    """A new case. ``province`` is a code in ``province_scheme`` or a province name (old names map)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    province: str = Field(min_length=1, max_length=64, examples=["01"])
    province_scheme: Literal["vn-2025", "vn-legacy"] = "vn-2025"
    channel: Channel
    needs: list[ServiceCategory] = Field(min_length=1, max_length=len(ServiceCategory))
    consent: ConsentIn
    phone: str | None = Field(default=None, max_length=32, examples=["0912345678"])

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            return to_e164(value, mobile_only=True)
        except InvalidPhone as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _province(self) -> CaseIn:
        try:
            ref = resolve_province(self.province, self.province_scheme)
        except UnknownProvince as exc:
            raise ValueError(f"province: {exc}") from None
        # Stored and published in the post-2025 list, whatever list it was typed in.
        self.province, self.province_scheme = ref.code, "vn-2025"
        return self


class CaseOut(BaseModel):
    id: str
    province: str
    channel: Channel
    needs: list[ServiceCategory]
    consent: ConsentIn
    status: str
    opened_at: datetime
    phone_masked: str | None = None


class ContactOut(BaseModel):
    case_id: str
    phone: str | None
    sms_consent: bool
    status: str


CASE_STAFF = require(Role.CASEWORKER, Role.SUPERVISOR, Role.CENTRAL_ADMIN)


def _to_out(row: CaseRow, phone: str | None) -> CaseOut:
    return CaseOut(
        id=row.id,
        province=row.province,
        channel=Channel(row.channel),
        needs=[ServiceCategory(n) for n in row.needs.split(",") if n],
        consent=ConsentIn(referral=row.consent_referral, sms=row.consent_sms),
        status=row.status,
        opened_at=row.opened_at,
        phone_masked=mask(phone) if phone else None,
    )


def build_router(rt: Runtime, protector: Protector) -> APIRouter:
    router = APIRouter()

    def audit(actor: str, action: str, case_id: str, fields: list[str], purpose: str) -> AuditRow:
        return AuditRow(
            at=datetime.now(UTC),
            actor=actor,
            action=action,
            case_id=case_id,
            fields=",".join(fields),
            purpose=purpose,
        )

    @router.post("/v1/cases", status_code=201, response_model=CaseOut, tags=["cases"])
    async def open_case(body: CaseIn, who: Annotated[Principal, Depends(CASE_STAFF)]) -> CaseOut:
        if not who.sees_province(body.province):
            raise Forbidden(f"province: you may register cases in province {who.province} only")
        case_id = str(uuid.uuid4())
        try:
            case = Case.open(
                case_id=case_id,
                province=body.province,
                channel=body.channel,
                needs=body.needs,
                consent=Consent(referral=body.consent.referral, sms=body.consent.sms),
                has_phone=body.phone is not None,
                at=datetime.now(UTC),
            )
        except DomainError as exc:
            raise Unprocessable(str(exc)) from None
        row = CaseRow(
            id=case.id,
            province=case.province,
            province_scheme=SCHEME_2025,
            channel=case.channel.value,
            needs=",".join(n.value for n in case.needs),
            consent_referral=case.consent.referral,
            consent_sms=case.consent.sms,
            opened_at=case.opened_at,
            status=case.status,
        )
        if body.phone:
            row.phone_enc = protector.encrypt(body.phone, case.id, "phone")
            row.phone_bidx = protector.phone_index(body.phone)
        async with rt.uow() as uow:
            uow.session.add(row)
            if body.phone:
                uow.session.add(audit(who.audit_name, "create", case.id, ["phone"], "registration"))
            uow.emit(*case.events)
            await uow.commit()
        return _to_out(row, body.phone)

    @router.get("/v1/cases/{case_id}", response_model=CaseOut, tags=["cases"])
    async def get_case(case_id: str, who: Annotated[Principal, Depends(CASE_STAFF)]) -> CaseOut:
        async with rt.uow() as uow:
            row = await uow.session.get(CaseRow, case_id)
            if row is None or not who.sees_province(row.province):
                raise CaseNotFound(f"no case {case_id}")  # 404, not 403: existence must not leak
            phone = protector.decrypt(row.phone_enc, row.id, "phone") if row.phone_enc else None
            if phone:
                uow.session.add(audit(who.audit_name, "read", row.id, ["phone"], "case_view"))
            await uow.commit()
        return _to_out(row, phone)

    @router.get("/internal/v1/cases/{case_id}/contact", response_model=ContactOut, tags=["internal"])
    async def contact(
        case_id: str,
        who: Annotated[Principal, Depends(require(Role.SERVICE))],
        purpose: str = Query(min_length=1, max_length=100, pattern=r"^[a-z0-9_]+$"),
    ) -> ContactOut:
        """Her phone for a consented contact, read by another service at send time. Audited."""
        async with rt.uow() as uow:
            row = await uow.session.get(CaseRow, case_id)
            if row is None:
                raise CaseNotFound(f"no case {case_id}")
            phone = protector.decrypt(row.phone_enc, row.id, "phone") if row.phone_enc else None
            uow.session.add(audit(who.audit_name, "read", row.id, ["phone"], purpose))
            await uow.commit()
        return ContactOut(case_id=row.id, phone=phone, sms_consent=row.consent_sms, status=row.status)

    return router
