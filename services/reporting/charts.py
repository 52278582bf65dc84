"""One chart per donor-report figure: a Vega-Lite spec (JSON) and a self-contained SVG bar chart,
drawn here without a plotting library. Suppressed months show as an empty bar labelled "<k"."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"


def series(months: Sequence[str], values: Sequence[int | str | None]) -> list[dict[str, Any]]:
    """``[{"month": "2025-07", "value": 12, "label": "12"}]``; a suppressed value has no height."""
    out = []
    for month, value in zip(months, values, strict=True):
        number = value if isinstance(value, int) else None
        out.append(
            {"month": month.removeprefix("M"), "value": number, "label": "" if value is None else str(value)}
        )
    return out


def vega_lite(title: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "$schema": VEGA_LITE_SCHEMA,
        "title": title,
        "width": 640,
        "height": 240,
        "data": {"values": data},
        "layer": [
            {
                "mark": {"type": "bar", "color": "#2a7ab0"},
                "encoding": {
                    "x": {"field": "month", "type": "ordinal", "title": None},
                    "y": {"field": "value", "type": "quantitative", "title": None},
                },
            },
            {
                "mark": {"type": "text", "dy": -6, "fontSize": 9},
                "encoding": {
                    "x": {"field": "month", "type": "ordinal"},
                    "y": {"field": "value", "type": "quantitative"},
                    "text": {"field": "label"},
                },
            },
        ],
    }


def svg(title: str, data: list[dict[str, Any]], width: int = 720, height: int = 300) -> str:
    """A bar chart of ``data`` (from :func:`series`) as an SVG document."""
    left, right, top, bottom = 40, 10, 30, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([d["value"] or 0 for d in data] + [1])
    step = plot_w / max(len(data), 1)
    bar = max(step * 0.7, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="18" font-size="14">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>',
        f'<text x="{left - 4}" y="{top + 4}" font-size="9" text-anchor="end">{peak}</text>',
    ]
    for i, d in enumerate(data):
        x = left + i * step + (step - bar) / 2
        h = (d["value"] or 0) / peak * plot_h
        y = top + plot_h - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="#2a7ab0"><title>{escape(d["month"])}: {escape(d["label"])}</title></rect>'
        )
        if d["label"]:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" font-size="8" text-anchor="middle">{escape(d["label"])}</text>'
            )
        if len(data) <= 24 or i % 3 == 0:
            lx, ly = x + bar / 2, top + plot_h + 12
            parts.append(
                f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="8" text-anchor="end" transform="rotate(-45 {lx:.1f} {ly:.1f})">{escape(d["month"])}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts)
