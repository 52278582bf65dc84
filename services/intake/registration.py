"""Registering a case, under load: each request validates, seals and indexes her case file on its
own (no I/O), then the registrations waiting together are written in one transaction
(:class:`shared.groupcommit.GroupCommit`). The duplicate check of the whole batch is one query,
and each registration is also checked against those before it in the batch, so two requests for
the same woman in one batch are caught exactly as if they had come one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.api.models import DuplicateCandidate
from services.intake.domain import STRONG_DUPLICATE_KINDS
from services.intake.store import audit_t, cases, consents_t, keys_t, lookup_holders, lookups
from shared.groupcommit import GroupCommit
from shared.http import ProblemError
from shared.runtime import Runtime


class PossibleDuplicate(ProblemError):
    status = 409
    title = "Possible duplicate"
    title_vi = "Có thể trùng hồ sơ"


@dataclass(slots=True)
class Registration:
    """One registration, ready to write: every value computed, every identifying field sealed."""

    case_id: str
    province: str
    #: Provinces whose cases the registering user may see as duplicate candidates (None: all).
    visible: list[str] | None
    confirm_not_duplicate: bool
    duplicate_pairs: list[tuple[str, str]]  # (kind, keyed hash) to look for
    lookup_pairs: list[tuple[str, str]]  # (kind, keyed hash) that will find her
    case_values: dict[str, Any]
    key_values: dict[str, Any]
    consent_values: list[dict[str, Any]]
    audit_values: dict[str, Any] | None
    outbox: list[dict[str, object]]  # her events, encoded in the request (its trace)


def candidates_of(found: dict[str, set[str]]) -> list[DuplicateCandidate]:
    return [DuplicateCandidate(case_id=cid, matched_on=sorted(kinds)) for cid, kinds in sorted(found.items())]


def possible_duplicate(strong: list[DuplicateCandidate]) -> PossibleDuplicate:
    ids = ", ".join(c.case_id for c in strong)
    return PossibleDuplicate(
        f"possible duplicate of case(s) {ids}; check them, then resend with confirm_not_duplicate=true "
        "to register anyway",
        detail_vi=f"có thể trùng với hồ sơ {ids}; kiểm tra rồi gửi lại với confirm_not_duplicate=true "
        "để vẫn đăng ký",
        candidates=[c.model_dump() for c in strong],
    )


class Registrar:
    """Writes registrations, many per transaction when many wait."""

    def __init__(self, rt: Runtime, *, max_batch: int = 64) -> None:
        self._rt = rt
        self.group: GroupCommit[Registration, list[DuplicateCandidate]] = GroupCommit(
            self._write, service="intake", name="registrations", max_batch=max_batch
        )

    async def register(self, item: Registration) -> list[DuplicateCandidate]:
        """Write her case; the cases it may duplicate (phone only warns). Raises
        :class:`PossibleDuplicate` when a strong match blocks it."""
        return await self.group.submit(item)

    async def _write(self, items: list[Registration]) -> list[list[DuplicateCandidate] | Exception]:
        async with self._rt.uow() as uow:
            pairs = list(dict.fromkeys(pair for item in items for pair in item.duplicate_pairs))
            holders = await lookup_holders(uow.session, pairs)
            outcomes: list[list[DuplicateCandidate] | Exception] = []
            accepted: list[Registration] = []
            for item in items:
                found: dict[str, set[str]] = {}
                for pair in item.duplicate_pairs:
                    for case_id, province in holders.get(pair, ()):
                        if item.visible is None or province in item.visible:
                            found.setdefault(case_id, set()).add(pair[0])
                candidates = candidates_of(found)
                strong = [c for c in candidates if set(c.matched_on) & STRONG_DUPLICATE_KINDS]
                if strong and not item.confirm_not_duplicate:
                    outcomes.append(possible_duplicate(strong))
                    continue
                outcomes.append(candidates)
                accepted.append(item)
                for pair in item.lookup_pairs:  # the rest of the batch must see her too
                    holders.setdefault(pair, []).append((item.case_id, item.province))
            if accepted:
                await self._insert(uow.session, accepted)
                for item in accepted:
                    uow.emit_rows(item.outbox)
                await uow.commit()
        return outcomes

    @staticmethod
    async def _insert(session: AsyncSession, items: list[Registration]) -> None:
        # One executemany per table for the whole batch.
        await session.execute(insert(cases), [i.case_values for i in items])
        await session.execute(insert(keys_t), [i.key_values for i in items])
        lookup_rows = [
            {"case_id": i.case_id, "province": i.province, "kind": kind, "digest": digest}
            for i in items
            for kind, digest in dict.fromkeys(i.lookup_pairs)
        ]
        if lookup_rows:
            await session.execute(insert(lookups), lookup_rows)
        await session.execute(insert(consents_t), [row for i in items for row in i.consent_values])
        audits = [i.audit_values for i in items if i.audit_values]
        if audits:
            await session.execute(insert(audit_t), audits)
