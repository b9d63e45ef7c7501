"""Charts as inline SVG, drawn on the server (no script, no library, no build step).

Each function returns markup safe to place in a template; every number is
formatted here, every label is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

RANK_COLOURS = {"grid": "#2e7d32", "village": "#8bc34a", "township": "#ffb300", "county": "#e53935"}
RANK_LABELS = {"grid": "网格", "village": "村", "township": "乡镇", "county": "县"}


def _svg(width: int, height: int, body: str, label: str) -> Markup:
    return Markup(
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">{body}</svg>'
    )


def stacked_bar(counts: dict[str, int], width: int = 240, height: int = 18) -> Markup:
    """Cases resolved at each rank as one bar, grid (green) to county (red)."""
    total = sum(counts.values())
    summary = "，".join(f"{RANK_LABELS.get(rank, rank)} {n}" for rank, n in counts.items())
    if not total:
        body = f'<rect width="{width}" height="{height}" fill="#eeeeee"/>'
        return _svg(width, height, body, "尚无化解 none resolved")
    parts, x = [], 0.0
    for rank, n in counts.items():
        if not n:
            continue
        w = width * n / total
        share = f"{RANK_LABELS.get(rank, rank)} {n} ({n / total:.0%})"
        parts.append(
            f'<rect x="{x:.2f}" y="0" width="{w:.2f}" height="{height}" '
            f'fill="{RANK_COLOURS.get(rank, "#9e9e9e")}"><title>{escape(share)}</title></rect>'
        )
        x += w
    return _svg(width, height, "".join(parts), summary)


def rate_bar(rate: float | None, width: int = 160, height: int = 14) -> Markup:
    """A rate between 0 and 1 as a filled bar (grey when there is nothing to rate)."""
    if rate is None:
        return _svg(
            width,
            height,
            f'<rect width="{width}" height="{height}" fill="#eeeeee"/>',
            "无数据 no data",
        )
    colour = "#2e7d32" if rate >= 0.9 else "#ffb300" if rate >= 0.7 else "#e53935"
    body = (
        f'<rect width="{width}" height="{height}" fill="#eeeeee"/>'
        f'<rect width="{width * min(max(rate, 0.0), 1.0):.2f}" height="{height}" fill="{colour}"/>'
    )
    return _svg(width, height, body, f"{rate:.1%}")


def line_chart(
    points: Sequence[tuple[str, float | None]], width: int = 720, height: int = 220
) -> Markup:
    """A rate (0–1) over periods: one labelled point per period, gaps where there is no rate."""
    left, right, top, bottom = 44, 28, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(points) - 1, 1)

    def y(rate: float) -> float:
        return top + plot_h * (1 - rate)

    grid = []
    for level in (0.0, 0.25, 0.5, 0.75, 1.0):
        grid.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(level):.1f}" y2="{y(level):.1f}" '
            f'stroke="#dddddd"/><text x="{left - 6}" y="{y(level) + 4:.1f}" text-anchor="end" '
            f'font-size="11" fill="#666666">{level:.0%}</text>'
        )
    segments: list[list[tuple[float, float]]] = [[]]
    dots, labels = [], []
    every = max(1, len(points) // 8)
    for i, (label, rate) in enumerate(points):
        x = left + i * step
        if i % every == 0 or i == len(points) - 1:
            labels.append(
                f'<text x="{x:.1f}" y="{height - 12}" text-anchor="middle" font-size="11" '
                f'fill="#666666">{escape(label)}</text>'
            )
        if rate is None:
            segments.append([])
            continue
        segments[-1].append((x, y(rate)))
        dots.append(
            f'<circle cx="{x:.1f}" cy="{y(rate):.1f}" r="3.5" fill="#1565c0">'
            f"<title>{escape(label)}: {rate:.1%}</title></circle>"
        )
    lines = [
        '<polyline fill="none" stroke="#1565c0" stroke-width="2" points="'
        + " ".join(f"{px:.1f},{py:.1f}" for px, py in seg)
        + '"/>'
        for seg in segments
        if len(seg) > 1
    ]
    rates = [rate for _, rate in points if rate is not None]
    summary = f"{len(points)} periods, latest {rates[-1]:.1%}" if rates else "no rate in any period"
    return _svg(width, height, "".join(grid + lines + dots + labels), summary)
