"""HSDS 3.0 import/export of the partner directory: round trip on the pilot provinces' directory,
old province codes mapped, and a bad file rejected whole with every error listed."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson
import pytest

from services.referral import hsds
from services.referral.directory import DirectoryError
from services.referral.seed import read_directory
from shared.provinces import map_legacy_code, resolve_province

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "demo" / "partners.json"


@pytest.fixture(scope="module")
def document() -> dict:
    return orjson.loads(DEMO.read_bytes())


def test_round_trip_on_the_pilot_provinces(document: dict) -> None:
    directory = hsds.parse(document)
    exported = hsds.export(directory)
    again = hsds.parse(exported)
    assert again == directory
    assert hsds.export(again) == exported  # export is deterministic
    assert set(exported) == {"hsds_version", *hsds.OBJECTS}
    provinces = {p for o in directory.organizations for p in o.provinces}
    # Hà Nội, Hải Phòng, Cần Thơ, Nghệ An, Hà Tĩnh, Quảng Trị (post-2025 codes, checked by name).
    assert provinces == {
        resolve_province(n).code
        for n in ("Hà Nội", "Hải Phòng", "Cần Thơ", "Nghệ An", "Hà Tĩnh", "Quảng Trị")
    }
    assert provinces == {"01", "31", "92", "40", "42", "44"}
    for obj in hsds.OBJECTS:
        assert exported[obj], f"{obj} is exported"


def test_old_province_codes_are_mapped_and_exported_as_new(document: dict) -> None:
    legacy = {
        a["service_id"]: a["extent"]
        for a in document["service_area"]
        if a["extent_type"] == "vn-legacy-province"
    }
    assert legacy == {
        "hd-legal-aid-legal": "30",
        "hg-vocational-training": "93",
        "st-union-peer": "94",
        "qb-health-check": "44",
    }
    directory = hsds.parse(document)
    areas = {s.id: s.areas[0].province for o in directory.organizations for s in o.services}
    for service_id, old in legacy.items():
        assert areas[service_id] == map_legacy_code(old).code
    assert (areas["hd-legal-aid-legal"], areas["hg-vocational-training"], areas["st-union-peer"]) == (
        "31",
        "92",
        "92",
    )
    assert areas["qb-health-check"] == "44"  # old 44 (Quảng Bình) is in the new 44 (Quảng Trị)
    exported = hsds.export(directory)
    assert {a["extent_type"] for a in exported["service_area"]} <= {"vn-2025-province", "vn-2025-ward"}


def test_eligibility_capacity_status_and_taxonomy_survive(document: dict) -> None:
    orgs = {o.id: o for o in hsds.parse(document).organizations}
    shelter = orgs["hn-peaceful-house"].services[0]
    assert (shelter.taxonomy_term, shelter.women_only, shelter.accepts_children, shelter.capacity) == (
        "shelter",
        True,
        True,
        25,
    )
    assert orgs["qb-health"].status == "temporarily_closed"
    assert orgs["st-union"].services[0].languages == ["vi", "km"]
    ward_area = [a for s in orgs["hn-union"].services for a in s.areas if a.ward]
    assert [(a.province, a.ward) for a in ward_area] == [("01", "00070")]
    assert orgs["hn-legal-aid"].locations[0].ward == "00070"


def test_a_bad_file_is_rejected_whole_with_every_error(document: dict) -> None:
    bad = copy.deepcopy(document)
    bad["service"][0]["organization_id"] = "nobody"
    bad["service"][1]["status"] = "maybe"
    bad["service_area"][2]["extent"] = "99"
    bad["service_area"][3]["extent_type"] = "district"
    bad["attribute"].append({"id": "x", "link_id": "hn-health-check", "taxonomy_term_id": "osso-nope"})
    bad["organization"].append({"id": "unmatched", "name": "Reserved"})
    bad["organization"].append({"name": "no id"})
    bad["service_at_location"].append(
        {"id": "sal-x", "service_id": "hn-health-check", "location_id": "nowhere"}
    )
    bad["people"] = []
    with pytest.raises(DirectoryError) as info:
        hsds.parse(bad)
    errors = "\n".join(info.value.errors)
    for expected in (
        "service[0].organization_id: unknown organization 'nobody'",
        "service[1].status: must be active, inactive or temporarily closed",
        "service_area[2].extent: unknown province '99'",
        "service_area[3].extent_type: must be vn-2025-province",
        "attribute[",
        "unknown taxonomy term 'osso-nope'",
        "organization[",
        "a non-empty string id is required",
        "reserved",
        "unknown location 'nowhere'",
        "people: unknown object type",
    ):
        assert expected in errors, expected
    assert len(info.value.errors) >= 10


def test_not_json_and_not_an_object() -> None:
    with pytest.raises(DirectoryError, match="not valid JSON"):
        hsds.parse(b"{not json")
    with pytest.raises(DirectoryError, match="JSON object"):
        hsds.parse(b"[]")


def test_a_service_needs_a_category_and_an_area() -> None:
    doc = {
        "organization": [{"id": "p1", "name": "P"}],
        "service": [{"id": "s1", "organization_id": "p1", "name": "S"}],
        "taxonomy_term": hsds.taxonomy_terms(),
    }
    with pytest.raises(DirectoryError) as info:
        hsds.parse(doc)
    assert any("no OSSO category" in e for e in info.value.errors)
    doc["attribute"] = [{"id": "a", "link_id": "s1", "taxonomy_term_id": "osso-legal_aid"}]
    with pytest.raises(DirectoryError) as info:
        hsds.parse(doc)
    assert any(e.startswith("service[0].service_area") for e in info.value.errors), info.value.errors


def test_the_walking_skeleton_list_format_still_loads() -> None:
    simple = b'{"partners": [{"id": "p1", "name": "P", "province": "H\xe1\xba\xa3i D\xc6\xb0\xc6\xa1ng", "categories": ["legal"]}]}'
    [org] = read_directory(simple).organizations
    assert org.provinces == ["31"] and org.services[0].category == "legal"
