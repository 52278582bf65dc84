"""Import and export of the partner directory as Open Referral HSDS 3.0 JSON. Pure.

The document holds one array per HSDS object: ``organization``, ``service`` (with its nested
``languages``, ``schedules`` and ``phones``), ``location``, ``service_at_location``,
``service_area``, ``taxonomy_term`` and ``attribute``. OSSO conventions on top of HSDS:

- ``service_area.extent_type`` is ``vn-2025-province``, ``vn-2025-ward`` or ``vn-legacy-province``
  and ``extent`` the code; legacy codes are mapped to the post-2025 province on import, and
  export writes post-2025 codes only.
- ``taxonomy_term`` rows of taxonomy ``osso`` are the six categories and the finer terms under
  them (``parent_id``); an ``attribute`` links a service to its term.
- eligibility and capacity are ``attribute`` rows on taxonomy ``osso-attributes`` terms
  (``women_only``, ``accepts_children``, ``capacity``, ``partner_status``, ``province_code``,
  ``ward_code``) with the value in ``value``.

:func:`parse` checks the whole file and raises :class:`DirectoryError` listing every problem; a
file is taken whole or not at all.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Any

import orjson
from pydantic import ValidationError

from services.referral.directory import (
    TAXONOMY,
    TERM_CATEGORY,
    Contact,
    Directory,
    DirectoryError,
    Location,
    OpeningHours,
    Organization,
    Service,
    ServiceArea,
)
from shared.provinces import UnknownProvince, map_legacy_code, resolve_province
from shared.vocab import ServiceCategory

HSDS_VERSION = "3.0"
OBJECTS = (
    "organization",
    "service",
    "location",
    "service_at_location",
    "service_area",
    "taxonomy_term",
    "attribute",
)
TAXONOMY_NAME = "osso"
ATTRIBUTE_TAXONOMY = "osso-attributes"
ATTRIBUTE_TERMS = (
    "women_only",
    "accepts_children",
    "capacity",
    "partner_status",
    "province_code",
    "ward_code",
)
DAYS = ("mo", "tu", "we", "th", "fr", "sa", "su")
HSDS_STATUS = {"active": "active", "inactive": "inactive", "temporarily_closed": "temporarily closed"}
OSSO_STATUS = {v: k for k, v in HSDS_STATUS.items()} | {"defunct": "inactive"}
CATEGORY_NAMES = {
    ServiceCategory.LEGAL: "Pháp lý",
    ServiceCategory.HEALTH_EDUCATION: "Y tế, giáo dục, đào tạo nghề",
    ServiceCategory.PSYCHOLOGICAL: "Tâm lý, phòng chống bạo lực giới",
    ServiceCategory.LIVELIHOOD: "Việc làm, vay vốn, sinh kế",
    ServiceCategory.UNION: "Hoạt động Hội LHPN",
    ServiceCategory.CHILDREN: "Chăm sóc trẻ em hồi hương",
}


@lru_cache(maxsize=1)
def _ward_province() -> dict[str, str]:
    from vietnam_provinces import Ward

    return {f"{int(w.code):05d}": f"{int(w.province_code):02d}" for w in Ward.iter_all()}


# -- export ------------------------------------------------------------------------------------------


def _term_id(code: str) -> str:
    return f"osso-{code}"


def taxonomy_terms() -> list[dict[str, Any]]:
    terms: list[dict[str, Any]] = []
    for category, fine in TAXONOMY.items():
        terms.append(
            {
                "id": _term_id(category.value),
                "code": category.value,
                "name": CATEGORY_NAMES[category],
                "parent_id": None,
                "taxonomy": TAXONOMY_NAME,
                "language": "vi",
            }
        )
        for code, name in fine.items():
            terms.append(
                {
                    "id": _term_id(code),
                    "code": code,
                    "name": name,
                    "parent_id": _term_id(category.value),
                    "taxonomy": TAXONOMY_NAME,
                    "language": "vi",
                }
            )
    for code in ATTRIBUTE_TERMS:
        terms.append(
            {
                "id": _term_id(code),
                "code": code,
                "name": code.replace("_", " "),
                "parent_id": None,
                "taxonomy": ATTRIBUTE_TAXONOMY,
                "language": "en",
            }
        )
    return terms


def export(directory: Directory) -> dict[str, Any]:
    """The directory as an HSDS 3.0 document (deterministic: sorted by id)."""
    doc: dict[str, list[dict[str, Any]]] = {name: [] for name in OBJECTS}
    attrs = doc["attribute"]

    def attribute(link_entity: str, link_id: str, term: str, value: str | None = None) -> None:
        attrs.append(
            {
                "id": f"{link_id}:{term}",
                "link_id": link_id,
                "link_type": link_entity,
                "link_entity": link_entity,
                "taxonomy_term_id": _term_id(term),
                "value": value,
            }
        )

    for org in sorted(directory.organizations, key=lambda o: o.id):
        contact = org.contact or Contact()
        doc["organization"].append(
            {
                "id": org.id,
                "name": org.name,
                "description": org.description,
                "email": contact.email,
                "website": contact.website,
                "phones": [{"id": f"{org.id}:phone", "number": contact.phone}] if contact.phone else [],
            }
        )
        if org.status != "active":
            attribute("organization", org.id, "partner_status", org.status)
        for loc in sorted(org.locations, key=lambda x: x.id):
            doc["location"].append(
                {
                    "id": loc.id,
                    "organization_id": org.id,
                    "name": loc.name,
                    "location_type": "physical",
                    "addresses": (
                        [{"id": f"{loc.id}:address", "address_1": loc.address, "country": "VN"}]
                        if loc.address
                        else []
                    ),
                }
            )
            attribute("location", loc.id, "province_code", loc.province)
            if loc.ward:
                attribute("location", loc.id, "ward_code", loc.ward)
        for s in sorted(org.services, key=lambda x: x.id):
            sc = s.contact or Contact()
            doc["service"].append(
                {
                    "id": s.id,
                    "organization_id": org.id,
                    "name": s.name,
                    "status": HSDS_STATUS[s.status],
                    "email": sc.email,
                    "url": sc.website,
                    "languages": [{"id": f"{s.id}:{lang}", "code": lang} for lang in s.languages],
                    "schedules": [
                        {
                            "id": f"{s.id}:hours:{i}",
                            "freq": "WEEKLY",
                            "byday": ",".join(d.upper() for d in h.days),
                            "opens_at": h.opens,
                            "closes_at": h.closes,
                        }
                        for i, h in enumerate(s.hours)
                    ],
                    "phones": [{"id": f"{s.id}:phone", "number": sc.phone}] if sc.phone else [],
                }
            )
            attribute("service", s.id, s.taxonomy_term or s.category.value)
            if s.women_only:
                attribute("service", s.id, "women_only", "true")
            if not s.accepts_children:
                attribute("service", s.id, "accepts_children", "false")
            if s.capacity is not None:
                attribute("service", s.id, "capacity", str(s.capacity))
            for i, a in enumerate(s.areas):
                ward = a.ward is not None
                doc["service_area"].append(
                    {
                        "id": f"{s.id}:area:{i}",
                        "service_id": s.id,
                        "name": resolve_province(a.province).name,
                        "extent_type": "vn-2025-ward" if ward else "vn-2025-province",
                        "extent": a.ward if ward else a.province,
                    }
                )
            for loc_id in s.location_ids:
                doc["service_at_location"].append(
                    {"id": f"{s.id}@{loc_id}", "service_id": s.id, "location_id": loc_id}
                )
    doc["taxonomy_term"] = taxonomy_terms()
    return {"hsds_version": HSDS_VERSION, **doc}


def dumps(directory: Directory) -> bytes:
    return orjson.dumps(export(directory), option=orjson.OPT_INDENT_2)


# -- import ------------------------------------------------------------------------------------------


class _Errors:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")


def _rows(doc: dict[str, Any], name: str, errors: _Errors) -> list[tuple[str, dict[str, Any]]]:
    value = doc.get(name, [])
    if not isinstance(value, list):
        errors.add(name, "must be an array")
        return []
    out = []
    for i, row in enumerate(value):
        path = f"{name}[{i}]"
        if not isinstance(row, dict):
            errors.add(path, "must be an object")
            continue
        if not isinstance(row.get("id"), str) or not row["id"]:
            errors.add(f"{path}.id", "a non-empty string id is required")
            continue
        out.append((path, row))
    ids = [r["id"] for _, r in out]
    for dup in sorted({x for x in ids if ids.count(x) > 1}):
        errors.add(name, f"duplicate id {dup!r}")
    return out


def _pydantic_errors(path: str, exc: ValidationError, errors: _Errors) -> None:
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"])
        errors.add(f"{path}.{loc}" if loc else path, e["msg"])


def _area(path: str, row: dict[str, Any], errors: _Errors) -> dict[str, Any] | None:
    kind, extent = row.get("extent_type"), str(row.get("extent") or "").strip()
    try:
        if kind == "vn-2025-province":
            return {"province": resolve_province(extent).code}
        if kind == "vn-legacy-province":
            return {"province": map_legacy_code(extent).code}
        if kind == "vn-2025-ward":
            ward = extent.zfill(5)
            province = _ward_province().get(ward)
            if province is None:
                errors.add(f"{path}.extent", f"unknown ward {extent!r} in the post-2025 ward list")
                return None
            return {"province": province, "ward": ward}
    except UnknownProvince as exc:
        errors.add(f"{path}.extent", str(exc))
        return None
    errors.add(
        f"{path}.extent_type",
        f"must be vn-2025-province, vn-2025-ward or vn-legacy-province, not {kind!r}",
    )
    return None


def parse(raw: bytes | str | dict[str, Any]) -> Directory:
    """An HSDS 3.0 document as a :class:`Directory`; raises :class:`DirectoryError` listing every
    problem in the file (nothing is taken from a file with any error)."""
    errors = _Errors()
    if isinstance(raw, dict):
        doc: Any = raw
    else:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DirectoryError([f"file: not valid JSON ({exc})"]) from None
    if not isinstance(doc, dict):
        raise DirectoryError(["file: an HSDS document is a JSON object of arrays"])
    version = doc.get("hsds_version", HSDS_VERSION)
    if not str(version).startswith("3."):
        errors.add("hsds_version", f"expected 3.x, not {version!r}")
    unknown = sorted(k for k in doc if k not in (*OBJECTS, "hsds_version", "comment"))
    for key in unknown:
        errors.add(key, f"unknown object type; expected one of {', '.join(OBJECTS)}")

    rows = {name: _rows(doc, name, errors) for name in OBJECTS}
    orgs = {r["id"]: (p, r) for p, r in rows["organization"]}
    terms = {r["id"]: (p, r) for p, r in rows["taxonomy_term"]}

    # Attributes: by linked id.
    attrs: dict[str, dict[str, str | None]] = defaultdict(dict)
    for path, row in rows["attribute"]:
        tid = row.get("taxonomy_term_id")
        if tid not in terms:
            errors.add(f"{path}.taxonomy_term_id", f"unknown taxonomy term {tid!r}")
            continue
        code = str(terms[tid][1].get("code") or "")
        if not isinstance(row.get("link_id"), str):
            errors.add(f"{path}.link_id", "required")
            continue
        value = row.get("value")
        attrs[row["link_id"]][code] = None if value is None else str(value)

    def service_term(path: str, sid: str) -> tuple[ServiceCategory | None, str | None]:
        codes = [c for c in attrs.get(sid, {}) if c in TERM_CATEGORY or c in set(ServiceCategory)]
        fine = [c for c in codes if c in TERM_CATEGORY]
        cats = [ServiceCategory(c) for c in codes if c in set(ServiceCategory)]
        if len(fine) > 1 or len(cats) > 1:
            errors.add(path, f"one OSSO taxonomy term per service, found {sorted(codes)}")
            return None, None
        if fine:
            category = TERM_CATEGORY[fine[0]]
            if cats and cats[0] != category:
                errors.add(path, f"term {fine[0]!r} is not under category {cats[0].value!r}")
            return category, fine[0]
        if cats:
            return cats[0], None
        errors.add(path, "no OSSO category: link a taxonomy_term of taxonomy 'osso' with an attribute")
        return None, None

    for path, row in rows["taxonomy_term"]:
        term_code: Any = row.get("code")
        if (
            row.get("taxonomy") == TAXONOMY_NAME
            and term_code not in TERM_CATEGORY
            and term_code not in set(ServiceCategory)
        ):
            errors.add(f"{path}.code", f"unknown OSSO taxonomy term {term_code!r}")

    areas: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path, row in rows["service_area"]:
        sid: Any = row.get("service_id")
        if not any(sid == r["id"] for _, r in rows["service"]):
            errors.add(f"{path}.service_id", f"unknown service {sid!r}")
            continue
        area = _area(path, row, errors)
        if area is not None:
            areas[sid].append(area)

    at_location: dict[str, list[str]] = defaultdict(list)
    location_ids = {r["id"] for _, r in rows["location"]}
    service_ids = {r["id"] for _, r in rows["service"]}
    for path, row in rows["service_at_location"]:
        if row.get("service_id") not in service_ids:
            errors.add(f"{path}.service_id", f"unknown service {row.get('service_id')!r}")
        elif row.get("location_id") not in location_ids:
            errors.add(f"{path}.location_id", f"unknown location {row.get('location_id')!r}")
        else:
            at_location[row["service_id"]].append(row["location_id"])

    services: dict[str, list[dict[str, Any]]] = defaultdict(list)
    service_paths: dict[str, str] = {}
    for path, row in rows["service"]:
        oid: Any = row.get("organization_id")
        if oid not in orgs:
            errors.add(f"{path}.organization_id", f"unknown organization {oid!r}")
            continue
        category, term = service_term(path, row["id"])
        if category is None:
            continue
        a = attrs.get(row["id"], {})
        status = OSSO_STATUS.get(str(row.get("status", "active")))
        if status is None:
            errors.add(
                f"{path}.status", f"must be active, inactive or temporarily closed, not {row.get('status')!r}"
            )
            continue
        capacity: Any = a.get("capacity")
        phones = row.get("phones") or []
        services[oid].append(
            {
                "id": row["id"],
                "name": row.get("name"),
                "category": category,
                "taxonomy_term": term,
                "status": status,
                "women_only": a.get("women_only") == "true",
                "accepts_children": a.get("accepts_children", "true") != "false",
                "languages": [lang.get("code") for lang in row.get("languages") or []] or ["vi"],
                "capacity": capacity,
                "areas": areas.get(row["id"], []),
                "hours": [
                    {
                        "days": [d.strip().lower() for d in str(h.get("byday", "")).split(",") if d.strip()],
                        "opens": h.get("opens_at"),
                        "closes": h.get("closes_at"),
                    }
                    for h in row.get("schedules") or []
                ],
                "location_ids": at_location.get(row["id"], []),
                "contact": (
                    {
                        "email": row.get("email"),
                        "website": row.get("url"),
                        "phone": phones[0].get("number") if phones else None,
                    }
                    if row.get("email") or row.get("url") or phones
                    else None
                ),
            }
        )
        service_paths[row["id"]] = path

    locations: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path, row in rows["location"]:
        oid = row.get("organization_id")
        if oid not in orgs:
            errors.add(f"{path}.organization_id", f"unknown organization {oid!r}")
            continue
        a = attrs.get(row["id"], {})
        addresses = row.get("addresses") or []
        locations[oid].append(
            {
                "id": row["id"],
                "name": row.get("name"),
                "province": a.get("province_code"),
                "ward": a.get("ward_code"),
                "address": addresses[0].get("address_1") if addresses else None,
            }
        )

    organizations = []
    for oid, (path, row) in orgs.items():
        phones = row.get("phones") or []
        data = {
            "id": oid,
            "name": row.get("name"),
            "description": row.get("description"),
            "status": attrs.get(oid, {}).get("partner_status") or "active",
            "contact": (
                {
                    "email": row.get("email"),
                    "website": row.get("website"),
                    "phone": phones[0].get("number") if phones else None,
                }
                if row.get("email") or row.get("website") or phones
                else None
            ),
            "services": services.get(oid, []),
            "locations": locations.get(oid, []),
        }
        try:
            organizations.append(Organization.model_validate(data))
        except ValidationError as exc:
            for e in exc.errors():
                loc = list(e["loc"])
                where = path
                # Point at the HSDS row of a nested service when we can.
                if len(loc) >= 2 and loc[0] == "services" and isinstance(loc[1], int):
                    sid = data["services"][loc[1]]["id"] if loc[1] < len(data["services"]) else None
                    where, loc = service_paths.get(sid, path), loc[2:]
                    if loc and loc[0] == "areas":
                        loc = ["service_area", *loc[1:]]
                field = ".".join(str(p) for p in loc)
                errors.add(f"{where}.{field}" if field else where, e["msg"])
    if not errors.items:
        try:
            return Directory(organizations=organizations).canonical()
        except ValidationError as exc:
            _pydantic_errors("directory", exc, errors)
    raise DirectoryError(errors.items)


__all__ = [
    "HSDS_VERSION",
    "OBJECTS",
    "Directory",
    "DirectoryError",
    "Location",
    "OpeningHours",
    "Organization",
    "Service",
    "ServiceArea",
    "dumps",
    "export",
    "parse",
    "taxonomy_terms",
]
