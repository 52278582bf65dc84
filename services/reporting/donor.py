"""The donor report: the figures the seed articles quote, for a project phase and a set of
provinces, each with a monthly chart. Pure: it shapes a rendered report (``queries.render``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.reporting.queries import CATEGORIES


@dataclass(frozen=True)
class Figure:
    metric: str
    vi: str
    en: str


#: In the order the articles give them ("tiếp cận, tư vấn cho hơn 800 phụ nữ với hơn 2.000 cuộc"...).
FIGURES = (
    Figure("women_reached", "Phụ nữ được tiếp cận, tư vấn", "Women reached and counselled"),
    Figure("sessions", "Cuộc tư vấn", "Counselling sessions"),
    Figure(
        "women_supported",
        "Người được hỗ trợ dịch vụ (y tế, giáo dục, pháp lý, tâm lý, sinh kế)",
        "People supported, by service type",
    ),
    Figure("referrals_requested", "Lượt chuyển tuyến, kết nối dịch vụ", "Referrals made"),
    Figure("referrals_completed", "Chuyển tuyến hoàn thành", "Referrals completed"),
    Figure("outreach_sessions", "Buổi truyền thông cộng đồng", "Community communication sessions"),
    Figure("outreach_participants", "Thành viên cộng đồng được tiếp cận", "Community members reached"),
    Figure("officials_trained", "Cán bộ được nâng cao năng lực", "Officials trained"),
)
FIGURE_METRICS = tuple(f.metric for f in FIGURES)


def _vn_number(value: Any) -> str:
    return f"{value:,}".replace(",", ".") if isinstance(value, int) else str(value)


def donor_report(
    rendered: dict[str, Any],
    *,
    phase: str,
    start: str,
    end: str,
    provinces: list[dict[str, str]],
    k: int | None,
) -> dict[str, Any]:
    """Shape a report rendered with ``group_by=("province",)`` as the donor report."""
    figures = []
    for figure in FIGURES:
        entry: dict[str, Any] = {
            "figure": figure.metric,
            "label_vi": figure.vi,
            "label_en": figure.en,
            "total": rendered["totals"][figure.metric],
            "by_province": {
                row["group"]["province"]: row["totals"][figure.metric] for row in rendered["rows"]
            },
            "chart": {
                "svg": f"charts/{figure.metric}.svg",
                "vega_lite": f"charts/{figure.metric}.vl.json",
            },
        }
        if figure.metric == "women_supported":
            entry["by_category"] = {
                cat: rendered["by_category"][cat]["women_supported"] for cat in CATEGORIES
            }
        figures.append(entry)
    totals = rendered["totals"]
    summary_vi = (
        f"Đã tiếp cận, tư vấn cho {_vn_number(totals['women_reached'])} phụ nữ với "
        f"{_vn_number(totals['sessions'])} cuộc; hỗ trợ {_vn_number(totals['women_supported'])} người; "
        f"{_vn_number(totals['outreach_sessions'])} buổi truyền thông cộng đồng với "
        f"{_vn_number(totals['outreach_participants'])} người tham dự; nâng cao năng lực cho "
        f"{_vn_number(totals['officials_trained'])} cán bộ."
    )
    return {
        "phase": phase,
        "from": start,
        "to": end,
        "provinces": provinces,
        "suppression_k": k,
        "summary_vi": summary_vi,
        "figures": figures,
        "completion_rate": totals["completion_rate"],
        "median_days_to_acceptance": totals["median_days_to_acceptance"],
        "median_days_to_completion": totals["median_days_to_completion"],
    }
