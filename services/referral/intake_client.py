"""The audited read of her consented details from intake, on behalf of a partner.

Contract (intake owns the endpoint)::

    GET {intake}/internal/v1/cases/{case_id}/shared?partner_category=<category>&purpose=referral
        &partner_id=<partner id>&referral_id=<referral id>
    Authorization: Bearer <service token (role service, subject "referral")>
    X-Osso-Service: referral
    X-Osso-On-Behalf-Of: partner:<partner id>

    200 {"case_id": "...", "fields": {"first_name": "...", "phone": "+84..."}, "do_not_contact": false}
        only the fields she consented to share with partners of that category (possibly none);
        intake writes one audit row per read (actor, case, field names, purpose).
    404 no such case · 410 erased · 403 not consented to share anything with that category

Intake down, or a timeout -> 503 here; any other answer -> 502. Never logged: the values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.http import ProblemError


class IntakeUnavailable(ProblemError):
    status = 503
    title = "Intake unavailable"


class IntakeBadAnswer(ProblemError):
    status = 502
    title = "Bad answer from intake"


class DetailsNotFound(ProblemError):
    status = 404
    title = "Not Found"


class DetailsGone(ProblemError):
    status = 410
    title = "Gone"


@dataclass(frozen=True)
class SharedDetails:
    fields: dict[str, str] = field(default_factory=dict)
    do_not_contact: bool = False


class IntakeDetails:
    def __init__(self, base_url: str, token: str, timeout: float = 5.0, transport: Any = None) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {token}", "X-Osso-Service": "referral"},
        )

    async def shared(
        self, *, case_id: str, category: str, partner_id: str, referral_id: str
    ) -> SharedDetails:
        try:
            r = await self._client.get(
                f"/internal/v1/cases/{case_id}/shared",
                params={
                    "partner_category": category,
                    "purpose": "referral",
                    "partner_id": partner_id,
                    "referral_id": referral_id,
                },
                headers={"X-Osso-On-Behalf-Of": f"partner:{partner_id}"},
            )
        except (httpx.ConnectError, httpx.TimeoutException, httpx.NetworkError) as exc:
            raise IntakeUnavailable(
                f"intake could not be reached ({type(exc).__name__}); try again later"
            ) from None
        if r.status_code == 404:
            raise DetailsNotFound(f"intake has no case for referral {referral_id}")
        if r.status_code == 410:
            raise DetailsGone(f"her details for referral {referral_id} were erased")
        if r.status_code == 403:
            return SharedDetails()  # she did not consent to share anything with this category
        if r.status_code == 503:
            raise IntakeUnavailable("intake is not ready; try again later")
        if r.status_code != 200:
            raise IntakeBadAnswer(f"intake answered {r.status_code}")
        try:
            body = r.json()
            fields = {str(k): str(v) for k, v in (body.get("fields") or {}).items() if v is not None}
            return SharedDetails(fields, bool(body.get("do_not_contact", False)))
        except (ValueError, AttributeError):
            raise IntakeBadAnswer("intake's answer is not the expected JSON") from None

    async def close(self) -> None:
        await self._client.aclose()
