"""Vietnamese provinces and wards across the 1 July 2025 reform (63 -> 34 provinces, no districts).

Everything resolves to a post-2025 province. Bare codes are ambiguous across the two code lists
("44" was Quảng Bình and is now the merged Quảng Trị; "45" only exists in the old list), so a code is
always read in an explicit scheme. Names never collide across the lists (every new province kept the
name of one of the provinces merged into it), so names resolve whatever the scheme.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NotRequired, TypedDict

from vietnam_provinces import Province, Ward

from shared.vntext import fold

SCHEME_2025 = "vn-2025"
SCHEME_LEGACY = "vn-legacy"


@dataclass(frozen=True)
class ProvinceRef:
    code: str  # two-digit post-2025 code
    name: str  # short name without "Tỉnh"/"Thành phố", e.g. "Hà Nội"


class UnknownProvince(ValueError):
    pass


class UnknownWard(ValueError):
    pass


_CODE_RE = re.compile(r"\d{1,2}", re.ASCII)
_PREFIXES = ("tinh ", "thanh pho ", "tp ")


def _name_key(name: str) -> str:
    """Fold a province name and drop punctuation and administrative prefixes."""
    key = " ".join(re.sub(r"[^a-z0-9]+", " ", fold(name)).split())
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _short_name(name: str) -> str:
    return name.removeprefix("Thành phố ").removeprefix("Tỉnh ")


class _LegacyRow(TypedDict):
    code: str
    name: str
    new_code: str
    aliases: NotRequired[list[str]]  # other names in common use, e.g. "Thừa Thiên Huế"


_NEW: dict[str, ProvinceRef] = {
    f"{int(p.code):02d}": ProvinceRef(f"{int(p.code):02d}", _short_name(p.name)) for p in Province.iter_all()
}
_LEGACY_ROWS: list[_LegacyRow] = json.loads(
    (Path(__file__).parent / "data" / "provinces_legacy.json").read_text(encoding="utf-8")
)
_LEGACY: dict[str, ProvinceRef] = {row["code"]: _NEW[row["new_code"]] for row in _LEGACY_ROWS}

_BY_NAME: dict[str, ProvinceRef] = {_name_key(ref.name): ref for ref in _NEW.values()}
_BY_NAME.update(
    {
        _name_key(name): _LEGACY[row["code"]]
        for row in _LEGACY_ROWS
        for name in [row["name"], *row.get("aliases", [])]
    }
)

_SCHEMES: dict[str, tuple[dict[str, ProvinceRef], str]] = {
    SCHEME_2025: (_NEW, f"the post-2025 list ({SCHEME_2025}, {len(_NEW)} provinces)"),
    SCHEME_LEGACY: (_LEGACY, f"the pre-2025 list ({SCHEME_LEGACY}, {len(_LEGACY)} provinces)"),
}


def _by_code(code: str, scheme: str) -> ProvinceRef:
    codes, description = _SCHEMES[scheme]
    stripped = code.strip()
    ref = codes.get(stripped.zfill(2)) if _CODE_RE.fullmatch(stripped) else None
    if ref is None:
        raise UnknownProvince(f"unknown province {code!r} in {description}")
    return ref


def resolve_province(value: str, scheme: str = SCHEME_2025) -> ProvinceRef:
    """Resolve a code (read in `scheme`) or a name (old or new, any spelling) to a post-2025 province."""
    if scheme not in _SCHEMES:
        raise ValueError(
            f"unknown province code scheme {scheme!r}; expected {SCHEME_2025!r} or {SCHEME_LEGACY!r}"
        )
    if value.strip().isdigit():
        return _by_code(value, scheme)
    ref = _BY_NAME.get(_name_key(value))
    if ref is None:
        raise UnknownProvince(f"unknown province {value!r} in either province list (by name)")
    return ref


def map_legacy_code(code: str) -> ProvinceRef:
    """The post-2025 province that a pre-2025 province code was merged into."""
    return _by_code(code, SCHEME_LEGACY)


def all_provinces() -> list[ProvinceRef]:
    """The 34 post-2025 provinces, sorted by code."""
    return sorted(_NEW.values(), key=lambda ref: ref.code)


def is_province_code(code: str) -> bool:
    """Whether `code` is a canonical two-digit post-2025 province code."""
    return code in _NEW


@lru_cache(maxsize=1)
def _ward_provinces() -> dict[str, str]:
    # Built lazily: the ward table (3,300+ rows) is only needed by callers that handle wards.
    return {f"{int(w.code):05d}": f"{int(w.province_code):02d}" for w in Ward.iter_all()}


def resolve_ward(code: str, province_code: str) -> str:
    """The canonical 5-digit code of a post-2025 ward, checked to lie in `province_code` (post-2025)."""
    province = resolve_province(province_code, SCHEME_2025)
    ward_code = code.strip().zfill(5)
    ward_province = _ward_provinces().get(ward_code)
    if ward_province is None:
        raise UnknownWard(f"unknown ward {code!r} in the post-2025 ward list")
    if ward_province != province.code:
        raise UnknownWard(
            f"ward {code!r} is in province {ward_province}, not {province.code} ({province.name})"
        )
    return ward_code


__all__ = [
    "SCHEME_2025",
    "SCHEME_LEGACY",
    "ProvinceRef",
    "UnknownProvince",
    "UnknownWard",
    "all_provinces",
    "is_province_code",
    "map_legacy_code",
    "resolve_province",
    "resolve_ward",
]
