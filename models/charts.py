"""Charts as SVG text, drawn on the server: the console needs no JavaScript library.

Pure. A chart is a few series of (x, y) points over one x range; it scales to its container
(a `viewBox`, no fixed size), so it reads on a laptop and on a phone. Every label is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 720
HEIGHT = 200
MARGIN_LEFT = 48
MARGIN_BOTTOM = 22
MARGIN_TOP = 10
MARGIN_RIGHT = 8


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    """(x, y), x increasing."""
    css_class: str
    """Colours come from the stylesheet: `series-<css_class>`."""
    step: bool = False
    """A balance holds until the next movement: drawn as steps, not slopes."""


def line_chart(
    series: Sequence[Series],
    *,
    x_range: tuple[float, float],
    x_labels: Sequence[tuple[float, str]],
    title: str,
    y_unit: str = "",
) -> str:
    """An SVG line chart of `series` over `x_range`, with `x_labels` at their x, the y axis
    from min(0, lowest) to the highest value, and a legend."""
    values = [y for s in series for _, y in s.points]
    top = max([*values, 1.0])
    bottom = min([*values, 0.0])
    x0, x1 = x_range
    span_x = (x1 - x0) or 1.0
    span_y = (top - bottom) or 1.0
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def px(x: float) -> float:
        return MARGIN_LEFT + (x - x0) / span_x * plot_w

    def py(y: float) -> float:
        return MARGIN_TOP + (top - y) / span_y * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + 18}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{MARGIN_LEFT}" y1="{py(bottom):.1f}" x2="{WIDTH - MARGIN_RIGHT}"'
        f' y2="{py(bottom):.1f}"/>',
        f'<line class="axis" x1="{MARGIN_LEFT}" y1="{MARGIN_TOP}" x2="{MARGIN_LEFT}"'
        f' y2="{HEIGHT - MARGIN_BOTTOM}"/>',
    ]
    for value in sorted({top, bottom, 0.0}):
        parts.append(
            f'<text class="tick" x="{MARGIN_LEFT - 4}" y="{py(value) + 4:.1f}" '
            f'text-anchor="end">{escape(_number(value))}</text>'
        )
    if bottom < 0:
        parts.append(
            f'<line class="zero" x1="{MARGIN_LEFT}" y1="{py(0):.1f}" '
            f'x2="{WIDTH - MARGIN_RIGHT}" y2="{py(0):.1f}"/>'
        )
    for x, label in x_labels:
        anchor = "start" if x <= x0 else "end" if x >= x1 else "middle"
        parts.append(
            f'<text class="tick" x="{px(x):.1f}" y="{HEIGHT - 6}" '
            f'text-anchor="{anchor}">{escape(label)}</text>'
        )
    for s in series:
        if not s.points:
            continue
        path = _path([(px(x), py(y)) for x, y in s.points], step=s.step)
        parts.append(f'<path class="series series-{escape(s.css_class)}" d="{path}"/>')
        if len(s.points) == 1:
            ((x, y),) = s.points
            parts.append(
                f'<circle class="series-{escape(s.css_class)}" cx="{px(x):.1f}" '
                f'cy="{py(y):.1f}" r="3"/>'
            )
    legend_x = MARGIN_LEFT
    for s in series:
        label = f"{s.name} (max {_number(max((y for _, y in s.points), default=0))}{y_unit})"
        parts.append(
            f'<rect class="key series-{escape(s.css_class)}" x="{legend_x}" y="{HEIGHT + 6}" '
            f'width="10" height="10"/>'
            f'<text class="legend" x="{legend_x + 14}" y="{HEIGHT + 15}">{escape(label)}</text>'
        )
        legend_x += 24 + 7 * len(label)
    parts.append("</svg>")
    return "".join(parts)


def _path(points: Sequence[tuple[float, float]], *, step: bool) -> str:
    (first_x, first_y), *rest = points
    out = [f"M{first_x:.1f},{first_y:.1f}"]
    previous_y = first_y
    for x, y in rest:
        if step:
            out.append(f"H{x:.1f}V{y:.1f}")
        else:
            out.append(f"L{x:.1f},{y:.1f}")
        previous_y = y
    if step:
        out.append(f"H{WIDTH - MARGIN_RIGHT}V{previous_y:.1f}")
    return "".join(out)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"
