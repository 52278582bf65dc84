"""Loading and saving a case file: the domain ``Case`` from its row, her sealed identity, and the
keyed hashes that find her. Routes and handlers go through here; nothing else touches ciphertext."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.domain import Case, Consent, Identity, age_band
from services.intake.protect import CaseKey, Protector
from services.intake.store import AuditRow, CaseKeyRow, CaseRow, SessionRow, replace_lookups
from shared.events import CaseProfile, ContactPreferences, NeedPriority
from shared.http import ProblemError
from shared.provinces import SCHEME_2025
from shared.vocab import Channel, ServiceCategory


class CaseNotFound(ProblemError):
    status = 404
    title = "Case not found"
    title_vi = "Không tìm thấy hồ sơ"


class CaseGone(ProblemError):
    status = 410
    title = "Case erased"
    title_vi = "Hồ sơ đã bị xoá"


PROFILE_STORY_FIELDS = ("migration_kind", "return_kind", "trafficking_status", "gbv_experienced")


def profile_of(story: dict[str, Any], year_of_birth: int | None, children: int, today: date) -> CaseProfile:
    """The categories reporting counts by, from her story, age and children."""
    return CaseProfile(
        **{k: story.get(k) for k in PROFILE_STORY_FIELDS},
        age_band=age_band(year_of_birth, today),
        children_returned=min(children, 30),
    )


def to_domain(row: CaseRow) -> Case:
    return Case(
        id=row.id,
        province=row.province,
        channel=Channel(row.channel),
        needs=[ServiceCategory(n) for n in row.needs.split(",") if n],
        consent=Consent(
            referral=row.consent_referral,
            sms=row.consent_sms,
            zalo=row.consent_zalo,
            statistics=row.consent_statistics,
            referral_categories=(
                tuple(ServiceCategory(c) for c in row.referral_categories.split(",") if c)
                if row.referral_categories is not None
                else None
            ),
        ),
        opened_at=row.opened_at,
        has_phone=row.has_phone,
        status=row.status,
        priorities={ServiceCategory(k): NeedPriority(v) for k, v in (row.priorities or {}).items()},
        profile=CaseProfile(**row.profile) if row.profile else CaseProfile(),
        contact=ContactPreferences(**row.contact) if row.contact else ContactPreferences(),
        close_reason=row.close_reason,
        erased=row.erased_at is not None,
    )


def _state(case: Case) -> dict[str, Any]:
    """The row columns that follow the domain state."""
    cats = case.consent.referral_categories
    return {
        "needs": ",".join(n.value for n in case.needs),
        "priorities": {c.value: p.value for c, p in case.priorities.items()},
        "consent_referral": case.consent.referral,
        "consent_sms": case.consent.sms,
        "consent_zalo": case.consent.zalo,
        "consent_statistics": case.consent.statistics,
        "referral_categories": ",".join(c.value for c in cats) if cats is not None else None,
        "profile": case.profile.model_dump(mode="json"),
        "contact": case.contact.model_dump(mode="json"),
        "status": case.status,
        "close_reason": case.close_reason,
        "has_phone": case.has_phone,
    }


def write_back(case: Case, row: CaseRow, at: datetime) -> None:
    """Copy the domain state onto its row."""
    for column, value in _state(case).items():
        setattr(row, column, value)
    row.updated_at = at


def row_values(
    case: Case, story: dict[str, Any], children: list[dict[str, Any]], identity_enc: str | None
) -> dict[str, Any]:
    """A new case's row, as the values to insert: registration writes it with a Core insert,
    without building an ORM object (that was a visible share of a registration's CPU)."""
    return {
        "id": case.id,
        "province": case.province,
        "province_scheme": SCHEME_2025,
        "channel": case.channel.value,
        **_state(case),
        "story": story,
        "children": children,
        "identity_enc": identity_enc,
        "opened_at": case.opened_at,
        "updated_at": case.opened_at,
        "erased_at": None,
    }


class CaseFiles:
    """The case files of one unit of work."""

    def __init__(self, session: AsyncSession, protector: Protector) -> None:
        self.session = session
        self.protector = protector

    async def row(self, case_id: str, visible: Any = None, *, allow_erased: bool = False) -> CaseRow:
        """The case's row; 404 when missing or outside ``visible(province)``, 410 once erased."""
        row = await self.session.get(CaseRow, case_id) if len(case_id) <= 64 else None
        if row is None or (visible is not None and not visible(row.province)):
            # 404, not 403: the existence of another province's case must not leak.
            raise CaseNotFound(f"no case {case_id}", detail_vi=f"không có hồ sơ {case_id}")
        if row.erased_at is not None and not allow_erased:
            raise CaseGone(f"case {case_id} was erased", detail_vi=f"hồ sơ {case_id} đã bị xoá")
        return row

    async def key(self, case_id: str) -> CaseKey | None:
        key_row = await self.session.get(CaseKeyRow, case_id)
        return self.protector.unwrap(case_id, key_row.wrapped_key) if key_row else None

    async def identities(self, rows: list[CaseRow]) -> list[Identity]:
        """Her identity for each row, with every key read in one query (a page of search results)."""
        sealed = [r.id for r in rows if r.identity_enc]
        wrapped: dict[str, str] = {}
        if sealed:
            keys = CaseKeyRow.__table__  # type: ignore[attr-defined]
            found = await self.session.execute(
                select(keys.c.case_id, keys.c.wrapped_key).where(keys.c.case_id.in_(sealed))
            )
            wrapped = {case_id: w for case_id, w in found.all()}
        out = []
        for r in rows:
            w = wrapped.get(r.id)
            if not r.identity_enc or w is None:
                out.append(Identity())
            else:
                out.append(self.protector.open_identity(self.protector.unwrap(r.id, w), r.identity_enc))
        return out

    async def identity(self, row: CaseRow) -> Identity:
        if not row.identity_enc:
            return Identity()
        key = await self.key(row.id)
        return self.protector.open_identity(key, row.identity_enc) if key else Identity()

    async def store_identity(self, row: CaseRow, identity: Identity) -> None:
        key = await self.key(row.id)
        assert key is not None, "a case that is not erased has a key"
        row.identity_enc = self.protector.seal_identity(key, identity)
        await self._index(row.id, row.province, identity)

    async def _index(self, case_id: str, province: str, identity: Identity) -> None:
        await replace_lookups(
            self.session, case_id, province, self.protector.lookup_pairs(identity, province)
        )

    async def shred(self, row: CaseRow, at: datetime) -> None:
        """Erase her identifying data: the key, the sealed fields and every keyed hash."""
        await self.session.execute(delete(CaseKeyRow).where(CaseKeyRow.case_id == row.id))  # type: ignore[arg-type]
        await replace_lookups(self.session, row.id, row.province, [])
        sessions = SessionRow.__table__  # type: ignore[attr-defined]
        await self.session.execute(
            sessions.update().where(sessions.c.case_id == row.id).values(notes_enc=None)
        )
        row.identity_enc = None
        row.has_phone = False
        row.erased_at = at

    def audit(self, actor: str, action: str, case_id: str, fields: list[str], purpose: str) -> None:
        self.session.add(AuditRow(**audit_values(actor, action, case_id, fields, purpose)))


def audit_values(actor: str, action: str, case_id: str, fields: list[str], purpose: str) -> dict[str, Any]:
    """An audit record's columns: who, what, which case, which fields, why, now."""
    return {
        "at": datetime.now(UTC),
        "actor": actor,
        "action": action,
        "case_id": case_id,
        "fields": ",".join(fields)[:200],
        "purpose": purpose[:100],
    }
