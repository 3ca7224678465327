"""Charts as inline SVG strings: no script, no font or file from the network.

Every drawn datum is an element of class `mark` (a bar, a line, a dot), so a browser test can
check that each chart really drew its data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 80, 160, 20, 50
Format = Callable[[float], str]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(f"{int(value)}") - 1) if value >= 1 else 10 ** -_zeros(value)
    for step in (1, 2, 4, 6, 8, 10):  # quarters of these make readable ticks
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _zeros(value: float) -> int:
    count = 0
    while value < 1:
        value *= 10
        count += 1
    return count


def _frame(chart_id: str, body: list[str], legend: Sequence[str], height: int = HEIGHT) -> str:
    items = []
    for index, name in enumerate(legend):
        y = TOP + 16 * index
        items.append(
            f'<rect class="legend" x="{WIDTH - RIGHT + 12}" y="{y}" width="10" height="10" '
            f'fill="{PALETTE[index % len(PALETTE)]}"/>'
            f'<text x="{WIDTH - RIGHT + 28}" y="{y + 9}">{escape(name[:22])}</text>'
        )
    return (
        f'<svg class="chart" data-chart="{chart_id}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img">'
        + "".join(body)
        + "".join(items)
        + "</svg>"
    )


def _y_axis(top: float, fmt: Format, height: int = HEIGHT) -> list[str]:
    plot_h = height - TOP - BOTTOM
    parts = []
    for i in range(5):
        value = top * i / 4
        y = height - BOTTOM - plot_h * i / 4
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(value))}</text>"
        )
    return parts


def _x_labels(labels: Sequence[str], centers: Sequence[float], height: int = HEIGHT) -> list[str]:
    every = max(1, len(labels) // 8)
    return [
        f'<text class="tick" x="{x:.1f}" y="{height - BOTTOM + 18}" text-anchor="middle">'
        f"{escape(label)}</text>"
        for i, (label, x) in enumerate(zip(labels, centers, strict=True))
        if i % every == 0 or i == len(labels) - 1
    ]


def empty(chart_id: str, message: str) -> str:
    """A chart with nothing to draw says so instead of drawing empty axes."""
    return (
        f'<svg class="chart empty" data-chart="{chart_id}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} 60" width="{WIDTH}" height="60">'
        f'<text x="{LEFT}" y="35">{escape(message)}</text></svg>'
    )


def stacked_bars(
    chart_id: str, categories: Sequence[str], series: Mapping[str, Sequence[float]], fmt: Format
) -> str:
    """One bar per category (a day), stacked by series (a model, an agent type ...)."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(categories))]
    top = _nice_max(max(totals, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(categories))
    bar = max(2.0, slot * 0.7)
    body = _y_axis(top, fmt)
    centers = [LEFT + slot * (i + 0.5) for i in range(len(categories))]
    base = [0.0] * len(categories)
    for index, (name, values) in enumerate(series.items()):
        color = PALETTE[index % len(PALETTE)]
        for i, value in enumerate(values):
            if value <= 0:
                continue
            h = plot_h * value / top
            y = HEIGHT - BOTTOM - plot_h * base[i] / top - h
            body.append(
                f'<rect class="mark" x="{centers[i] - bar / 2:.1f}" y="{y:.2f}" '
                f'width="{bar:.1f}" height="{max(h, 0.5):.2f}" fill="{color}">'
                f"<title>{escape(name)} {escape(categories[i])}: {escape(fmt(value))}</title>"
                "</rect>"
            )
            base[i] += value
    body += _x_labels(categories, centers)
    return _frame(chart_id, body, list(series))


def horizontal_bars(chart_id: str, items: Sequence[tuple[str, float]], fmt: Format) -> str:
    """One labelled bar per item (a lever and what it saved)."""
    row = 28
    height = TOP + BOTTOM + row * max(1, len(items))
    top = _nice_max(max((v for _, v in items), default=0.0))
    left = 150
    plot_w = WIDTH - left - 120
    body = []
    for index, (label, value) in enumerate(items):
        y = TOP + row * index
        w = max(1.0, plot_w * value / top)
        body.append(
            f'<text class="tick" x="{left - 8}" y="{y + 17}" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect class="mark" x="{left}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" '
            f'fill="{PALETTE[index % len(PALETTE)]}"><title>{escape(label)}: '
            f"{escape(fmt(value))}</title></rect>"
            f'<text x="{left + w + 6:.1f}" y="{y + 17}">{escape(fmt(value))}</text>'
        )
    return _frame(chart_id, body, [], height=height)


def lines(
    chart_id: str,
    xs: Sequence[float],
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    fmt: Format,
    *,
    y_max: float | None = None,
    rules: Sequence[tuple[str, float]] = (),
) -> str:
    """Lines over a numeric x axis, with dots at each point and optional horizontal rules
    (a budget's limit and ladder thresholds)."""
    if not xs:
        return empty(chart_id, "no data")
    x0, x1 = min(xs), max(xs)
    span = (x1 - x0) or 1.0
    highest = max([v for values in series.values() for v in values] + [r for _, r in rules])
    top = y_max if y_max is not None else _nice_max(highest)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + plot_w * (x - x0) / span

    def py(y: float) -> float:
        return HEIGHT - BOTTOM - plot_h * min(y, top) / top

    body = _y_axis(top, fmt)
    for index, (label, value) in enumerate(rules):
        y = py(value)
        x = WIDTH - RIGHT - 4 - 120 * (index % 2)  # close rules: labels side by side
        body.append(
            f'<line class="rule" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="rule-label" x="{x}" y="{y - 3:.1f}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
    for index, (name, values) in enumerate(series.items()):
        color = PALETTE[index % len(PALETTE)]
        points = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in zip(xs, values, strict=True))
        body.append(
            f'<polyline class="mark" fill="none" stroke="{color}" stroke-width="2" '
            f'points="{points}"><title>{escape(name)}</title></polyline>'
        )
        if len(xs) <= 60:
            body += [
                f'<circle class="mark" cx="{px(x):.1f}" cy="{py(v):.1f}" r="3" fill="{color}">'
                f"<title>{escape(name)}: {escape(fmt(v))}</title></circle>"
                for x, v in zip(xs, values, strict=True)
            ]
    ticks = [px(x) for x in xs]
    body += _x_labels(x_labels, ticks)
    return _frame(chart_id, body, list(series))


def grouped_bars(
    chart_id: str,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    fmt: Format,
    *,
    y_max: float | None = None,
) -> str:
    """Side-by-side bars per group (a priority, a day), one per series (a percentile, a tier)."""
    highest = max((v for values in series.values() for v in values), default=0.0)
    top = y_max if y_max is not None else _nice_max(highest)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(groups))
    bar = slot * 0.8 / max(1, len(series))
    body = _y_axis(top, fmt)
    centers = [LEFT + slot * (i + 0.5) for i in range(len(groups))]
    for index, (name, values) in enumerate(series.items()):
        color = PALETTE[index % len(PALETTE)]
        for i, value in enumerate(values):
            h = max(1.0, plot_h * value / top)
            x = centers[i] - slot * 0.4 + bar * index
            body.append(
                f'<rect class="mark" x="{x:.1f}" y="{HEIGHT - BOTTOM - h:.2f}" '
                f'width="{bar:.1f}" height="{h:.2f}" fill="{color}">'
                f"<title>{escape(name)} {escape(groups[i])}: {escape(fmt(value))}</title></rect>"
            )
    body += _x_labels(groups, centers)
    return _frame(chart_id, body, list(series))
