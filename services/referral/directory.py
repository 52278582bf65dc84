"""The partner directory, modelled on Open Referral HSDS 3.0: organisations (partners), their services,
locations and the areas each service serves. Pure models and rules; storage is in ``store.py``.

A partner is an organisation; its id is the ``<partner_id>`` token of NATS subjects and tokens, so it
is a subject-safe token and may not be ``unmatched`` (``osso.referral.unmatched.<province>`` is the
unmatched-need subject).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.referral.matching import PartnerService
from shared.events import HHMM_PATTERN, TOKEN_PATTERN
from shared.provinces import SCHEME_2025, UnknownProvince, UnknownWard, resolve_province, resolve_ward
from shared.vocab import ServiceCategory

RESERVED_PARTNER_IDS = frozenset({"unmatched"})
Status = Literal["active", "inactive", "temporarily_closed"]
Day = Literal["mo", "tu", "we", "th", "fr", "sa", "su"]

#: The OSSO taxonomy: each category and the finer terms under it (HSDS ``taxonomy_term``).
TAXONOMY: dict[ServiceCategory, dict[str, str]] = {
    ServiceCategory.LEGAL: {
        "legal_aid": "Trợ giúp pháp lý",
        "civil_status_papers": "Giấy tờ hộ tịch",
        "nationality_papers": "Giấy tờ quốc tịch",
        "divorce_custody": "Ly hôn, quyền nuôi con",
    },
    ServiceCategory.HEALTH_EDUCATION: {
        "health_check": "Khám sức khỏe",
        "reproductive_health": "Sức khỏe sinh sản",
        "vocational_training": "Đào tạo nghề",
        "adult_education": "Giáo dục thường xuyên",
    },
    ServiceCategory.PSYCHOLOGICAL: {
        "mental_health": "Tham vấn tâm lý",
        "gbv_counselling": "Tư vấn phòng chống bạo lực giới",
        "family_skills": "Kỹ năng gia đình, chăm sóc con",
        "shelter": "Nơi tạm lánh",
    },
    ServiceCategory.LIVELIHOOD: {
        "job_placement": "Giới thiệu việc làm",
        "vbsp_loan": "Vay vốn Ngân hàng Chính sách xã hội",
        "business_start": "Khởi sự kinh doanh",
    },
    ServiceCategory.UNION: {
        "union_peer_group": "Nhóm đồng đẳng Hội LHPN",
        "union_membership": "Kết nạp hội viên",
    },
    ServiceCategory.CHILDREN: {
        "school_enrolment": "Nhập học cho trẻ",
        "birth_registration": "Đăng ký khai sinh",
        "child_care": "Chăm sóc trẻ",
    },
}
TERM_CATEGORY: dict[str, ServiceCategory] = {t: c for c, terms in TAXONOMY.items() for t in terms}
LANGUAGES = ("vi", "en", "ko", "zh", "ja", "km")


class DirectoryError(ValueError):
    """A directory document is invalid; ``errors`` lists every problem as ``path: message``."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(f"{len(errors)} error(s): " + "; ".join(errors[:5]))


def to_province(value: object) -> object:
    """A post-2025 code from a post-2025 code or any province name (old names map to the new)."""
    if isinstance(value, str):
        try:
            return resolve_province(value, SCHEME_2025).code
        except UnknownProvince as exc:
            raise ValueError(str(exc)) from None
    return value


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceArea(Model):
    """A province (post-2025 code; old codes and names are mapped) or one ward in it."""

    province: str
    ward: str | None = Field(default=None, pattern=r"^\d{5}$")

    @field_validator("province", mode="before")
    @classmethod
    def _province(cls, value: object) -> object:
        return to_province(value)

    @model_validator(mode="after")
    def _ward_in_province(self) -> ServiceArea:
        if self.ward is not None:
            try:
                resolve_ward(self.ward, self.province)
            except UnknownWard as exc:
                raise ValueError(str(exc)) from None
        return self


class OpeningHours(Model):
    days: list[Day] = Field(min_length=1)
    opens: str = Field(pattern=HHMM_PATTERN)
    closes: str = Field(pattern=HHMM_PATTERN)


class Contact(Model):
    """The partner's public desk, never a woman's data."""

    phone: str | None = Field(default=None, max_length=30)
    email: str | None = Field(default=None, max_length=200)
    website: str | None = Field(default=None, max_length=300)


class Location(Model):
    id: str = Field(pattern=TOKEN_PATTERN)
    name: str = Field(min_length=1, max_length=300)
    province: str
    ward: str | None = Field(default=None, pattern=r"^\d{5}$")
    address: str | None = Field(default=None, max_length=300)

    @field_validator("province", mode="before")
    @classmethod
    def _province(cls, value: object) -> object:
        return to_province(value)


class Service(Model):
    id: str = Field(pattern=TOKEN_PATTERN)
    name: str = Field(min_length=1, max_length=300)
    category: ServiceCategory
    taxonomy_term: str | None = None
    status: Status = "active"
    women_only: bool = False
    accepts_children: bool = True
    languages: list[str] = Field(default_factory=lambda: ["vi"], min_length=1)
    #: Open referrals it can take at once; None: no limit.
    capacity: int | None = Field(default=None, ge=0, le=100_000)
    areas: list[ServiceArea] = Field(min_length=1)
    hours: list[OpeningHours] = Field(default_factory=list)
    location_ids: list[str] = Field(default_factory=list)
    contact: Contact | None = None

    @model_validator(mode="after")
    def _term(self) -> Service:
        if self.taxonomy_term is not None and TERM_CATEGORY.get(self.taxonomy_term) != self.category:
            known = ", ".join(TAXONOMY[self.category])
            raise ValueError(
                f"taxonomy_term {self.taxonomy_term!r} is not a term of {self.category.value} ({known})"
            )
        bad = [lang for lang in self.languages if lang not in LANGUAGES]
        if bad:
            raise ValueError(f"languages: unknown {bad}; expected some of {list(LANGUAGES)}")
        return self


class Organization(Model):
    """A partner: the organisation referrals go to."""

    id: str = Field(pattern=TOKEN_PATTERN)
    name: str = Field(min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=2000)
    status: Status = "active"
    contact: Contact | None = None
    services: list[Service] = Field(min_length=1)
    locations: list[Location] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_PARTNER_IDS:
            raise ValueError(f"{value!r} is reserved (it is a NATS subject token)")
        return value

    @model_validator(mode="after")
    def _references(self) -> Organization:
        ids = [s.id for s in self.services]
        if len(ids) != len(set(ids)):
            raise ValueError("services: duplicate service ids")
        loc_ids = {loc.id for loc in self.locations}
        for s in self.services:
            missing = [x for x in s.location_ids if x not in loc_ids]
            if missing:
                raise ValueError(f"service {s.id}: unknown location(s) {missing}")
        return self

    @property
    def provinces(self) -> list[str]:
        return sorted({a.province for s in self.services for a in s.areas})

    @property
    def categories(self) -> list[ServiceCategory]:
        return sorted({s.category for s in self.services})

    def effective_status(self, service: Service) -> str:
        return service.status if self.status == "active" else self.status

    def matching_services(self) -> list[PartnerService]:
        """What matching needs of each of its services."""
        return [
            PartnerService(
                service_id=s.id,
                partner_id=self.id,
                category=s.category,
                provinces=frozenset(a.province for a in s.areas if a.ward is None),
                wards=frozenset(a.ward for a in s.areas if a.ward is not None),
                taxonomy_term=s.taxonomy_term,
                status=self.effective_status(s),
                women_only=s.women_only,
                accepts_children=s.accepts_children,
                languages=frozenset(s.languages),
                capacity=s.capacity,
            )
            for s in self.services
        ]


class Directory(Model):
    organizations: list[Organization]

    def canonical(self) -> Directory:
        """The same directory in a stable order (organisations, services, locations by id)."""
        return Directory(
            organizations=[
                o.model_copy(
                    update={
                        "services": sorted(o.services, key=lambda s: s.id),
                        "locations": sorted(o.locations, key=lambda loc: loc.id),
                    }
                )
                for o in sorted(self.organizations, key=lambda o: o.id)
            ]
        )

    @model_validator(mode="after")
    def _unique(self) -> Directory:
        seen: set[str] = set()
        service_ids: set[str] = set()
        for org in self.organizations:
            if org.id in seen:
                raise ValueError(f"organization {org.id}: duplicate id")
            seen.add(org.id)
            for s in org.services:
                if s.id in service_ids:
                    raise ValueError(f"service {s.id}: duplicate id across organizations")
                service_ids.add(s.id)
        return self


_SLUG = re.compile(r"[^a-z0-9]+")


def slug(value: str) -> str:
    return _SLUG.sub("-", value.lower()).strip("-")[:64] or "x"
