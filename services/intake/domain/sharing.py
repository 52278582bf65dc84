"""What a partner may learn about her: only for a category she consented to be referred to, and
only the fields that kind of partner needs to take the referral up (data minimisation). Pure."""

from __future__ import annotations

from typing import Any

from services.intake.domain.case import Consent
from services.intake.domain.identity import Identity
from shared.vocab import ServiceCategory

#: The least each kind of partner needs to call her back and start the service.
FIELDS_BY_CATEGORY: dict[ServiceCategory, tuple[str, ...]] = {
    ServiceCategory.LEGAL: ("first_name", "phone"),
    ServiceCategory.HEALTH_EDUCATION: ("first_name", "phone", "birth_year"),
    ServiceCategory.PSYCHOLOGICAL: ("first_name", "phone"),
    ServiceCategory.LIVELIHOOD: ("first_name", "phone", "ward"),
    ServiceCategory.UNION: ("first_name", "phone", "ward"),
    ServiceCategory.CHILDREN: ("first_name", "phone", "children_count"),
}


class NothingConsented(ValueError):
    """She did not agree to be referred for this category: a partner learns nothing."""


def first_name(full_name: str | None) -> str | None:
    """The given name: the last word of a Vietnamese full name ("Nguyễn Thị Hòa" -> "Hòa")."""
    if not full_name or not full_name.split():
        return None
    return full_name.split()[-1]


def shared_fields(
    identity: Identity, consent: Consent, category: ServiceCategory, *, do_not_contact: bool
) -> dict[str, Any]:
    """The fields a partner of ``category`` may read; a phone is withheld when she must not be
    contacted. Raises :class:`NothingConsented` without consent for that category."""
    if not consent.referral or (
        consent.referral_categories is not None and category not in consent.referral_categories
    ):
        raise NothingConsented(f"she has not agreed to be referred for {category.value}")
    available: dict[str, Any] = {
        "first_name": first_name(identity.full_name),
        "phone": None if do_not_contact or not identity.phones else identity.phones[0],
        "birth_year": identity.year_of_birth,
        "ward": identity.address.ward,
        "children_count": len(identity.children),
    }
    return {f: available[f] for f in FIELDS_BY_CATEGORY[category] if available[f] is not None}
