import json
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
from vietnam_provinces import Province

import shared.provinces
from shared.provinces import (
    SCHEME_2025,
    SCHEME_LEGACY,
    ProvinceRef,
    UnknownProvince,
    UnknownWard,
    all_provinces,
    is_province_code,
    map_legacy_code,
    resolve_province,
    resolve_ward,
)

LEGACY_ROWS = json.loads(
    (Path(shared.provinces.__file__).parent / "data" / "provinces_legacy.json").read_text(encoding="utf-8")
)
NEW_CODES = {f"{int(p.code):02d}" for p in Province.iter_all()}


def test_legacy_table_is_complete_and_maps_onto_the_new_list() -> None:
    assert len(LEGACY_ROWS) == 63
    assert len({row["code"] for row in LEGACY_ROWS}) == 63
    assert all(len(row["code"]) == 2 and row["code"].isdigit() for row in LEGACY_ROWS)
    assert {row["new_code"] for row in LEGACY_ROWS} <= NEW_CODES
    # Every one of the 34 new provinces absorbed at least one old one.
    assert {row["new_code"] for row in LEGACY_ROWS} == NEW_CODES
    assert len(NEW_CODES) == 34


def test_merge_sizes_match_resolution_202() -> None:
    sizes = Counter(Counter(row["new_code"] for row in LEGACY_ROWS).values())
    # 11 provinces unchanged, 17 formed from two old provinces, 6 from three.
    assert sizes == {1: 11, 2: 17, 3: 6}


def test_every_new_code_contains_the_old_province_with_the_same_code() -> None:
    # A surviving code always names the merged province that absorbed the old province with that code,
    # e.g. legacy 44 Quảng Bình -> new 44 Quảng Trị, legacy 24 Bắc Giang -> new 24 Bắc Ninh.
    for code in NEW_CODES:
        assert map_legacy_code(code).code == code


@pytest.mark.parametrize(
    ("legacy", "new_code", "new_name"),
    [
        ("30", "31", "Hải Phòng"),  # Hải Dương
        ("93", "92", "Cần Thơ"),  # Hậu Giang
        ("94", "92", "Cần Thơ"),  # Sóc Trăng
        ("44", "44", "Quảng Trị"),  # Quảng Bình
        ("45", "44", "Quảng Trị"),  # old Quảng Trị
        ("27", "24", "Bắc Ninh"),  # old Bắc Ninh: its code was not kept
        ("2", "08", "Tuyên Quang"),  # Hà Giang, one-digit input
    ],
)
def test_map_legacy_code(legacy: str, new_code: str, new_name: str) -> None:
    assert map_legacy_code(legacy) == ProvinceRef(new_code, new_name)


def test_codes_are_read_in_the_given_scheme_only() -> None:
    assert resolve_province("45", SCHEME_LEGACY).code == "44"
    with pytest.raises(
        UnknownProvince, match=r"unknown province '45' in the post-2025 list \(vn-2025, 34 provinces\)"
    ):
        resolve_province("45")
    with pytest.raises(UnknownProvince, match=r"pre-2025 list \(vn-legacy, 63 provinces\)"):
        resolve_province("99", SCHEME_LEGACY)
    with pytest.raises(UnknownProvince):
        map_legacy_code("Hải Dương")  # names are not codes
    with pytest.raises(ValueError, match="scheme"):
        resolve_province("01", "vn-1999")


@pytest.mark.parametrize(
    "value",
    [
        "01",
        "1",
        " 1 ",
        "Hà Nội",
        "ha noi",
        "HÀ NỘI",
        "Thành phố Hà Nội",
        "TP. Hà Nội",
        "tp ha noi",
        unicodedata.normalize("NFD", "Thành phố Hà Nội"),
    ],
)
def test_resolve_hanoi_spellings(value: str) -> None:
    assert resolve_province(value) == ProvinceRef("01", "Hà Nội")


def test_old_names_resolve_to_merged_province_in_any_scheme() -> None:
    for scheme in (SCHEME_2025, SCHEME_LEGACY):
        assert resolve_province("Tỉnh Hải Dương", scheme).code == "31"
        assert resolve_province("hau giang", scheme).code == "92"
        assert resolve_province("Quảng Bình", scheme).code == "44"
        assert resolve_province("Bà Rịa–Vũng Tàu", scheme).code == "79"
        assert resolve_province("Thừa Thiên Huế", scheme) == ProvinceRef("46", "Huế")
        assert resolve_province("TP.HCM", scheme).code == "79"


def test_every_name_in_both_lists_resolves_consistently() -> None:
    for row in LEGACY_ROWS:
        assert resolve_province(row["name"]) == map_legacy_code(row["code"])
    for ref in all_provinces():
        assert resolve_province(ref.name) == ref
        assert resolve_province(ref.code) == ref


def test_unknown_name() -> None:
    with pytest.raises(UnknownProvince, match="'Atlantis'"):
        resolve_province("Atlantis")


def test_all_provinces_and_is_province_code() -> None:
    provinces = all_provinces()
    assert len(provinces) == 34
    assert [p.code for p in provinces] == sorted(NEW_CODES)
    assert provinces[0] == ProvinceRef("01", "Hà Nội")
    assert is_province_code("44") and is_province_code("92")
    assert not is_province_code("45") and not is_province_code("1") and not is_province_code("Hà Nội")


def test_resolve_ward() -> None:
    assert resolve_ward("70", "01") == "00070"  # Phường Hoàn Kiếm
    assert resolve_ward("00070", "1") == "00070"
    with pytest.raises(UnknownWard, match="not 79"):
        resolve_ward("70", "79")
    for bad in ["99999", "abc", "", "123456"]:
        with pytest.raises(UnknownWard):
            resolve_ward(bad, "01")
    with pytest.raises(UnknownProvince):
        resolve_ward("70", "45")
