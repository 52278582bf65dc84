"""Intake's rules: pure, no I/O. A case records what happened to it as events."""

from services.intake.domain.activity import Activity
from services.intake.domain.case import (
    Case,
    CloseReason,
    Consent,
    DomainError,
    IllegalTransition,
    age_band,
    merge_needs,
)
from services.intake.domain.identity import (
    DUPLICATE_KINDS,
    STRONG_DUPLICATE_KINDS,
    Address,
    ChildIdentity,
    Identity,
    InvalidCitizenId,
    SearchKey,
    clean_name,
    name_tokens,
    normalise_cccd,
    search_keys,
)

__all__ = [
    "DUPLICATE_KINDS",
    "STRONG_DUPLICATE_KINDS",
    "Activity",
    "Address",
    "Case",
    "ChildIdentity",
    "CloseReason",
    "Consent",
    "DomainError",
    "Identity",
    "IllegalTransition",
    "InvalidCitizenId",
    "SearchKey",
    "age_band",
    "clean_name",
    "merge_needs",
    "name_tokens",
    "normalise_cccd",
    "search_keys",
]
