"""The report as one self-contained HTML file: inline CSS and SVG, nothing fetched."""

from __future__ import annotations

from html import escape
from pathlib import Path

from agentqueue.money import format_usd
from agentqueue.report import charts
from agentqueue.report.data import SpendReport
from agentqueue.report.format import share

STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px;
       color: #222; background: #fff; max-width: 1500px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 14px; }
.card { border: 1px solid #e4e4e4; border-radius: 6px; padding: 4px 12px 10px; }
h3 { font-size: 14px; font-weight: 600; margin: 10px 0 6px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
.meta { color: #666; margin-bottom: 16px; }
.totals { display: flex; gap: 24px; flex-wrap: wrap; margin: 12px 0 8px; }
.total { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; }
.total b { display: block; font-size: 20px; }
svg.chart { display: block; max-width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
svg .grid { stroke: #eee; } svg .rule { stroke: #c44; stroke-dasharray: 4 3; }
svg .rule-label { fill: #c44; } svg.empty text { fill: #888; font-style: italic; }
table { border-collapse: collapse; margin: 6px 0; }
td, th { padding: 2px 10px; text-align: right; border-bottom: 1px solid #eee; }
td:first-child, th:first-child { text-align: left; }
"""


def render_html(report: SpendReport) -> str:
    """The whole page; charts draw from the same numbers as the terminal tables."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>agentqueue spend report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>agentqueue: where the money went</h1>",
        f"<div class='meta'>{escape(_period(report))}</div>",
        _totals(report),
    ]
    parts.append("<div class='cards'>")
    for title, draw in charts.CHARTS:
        parts.append(f"<div class='card'><h3>{escape(title)}</h3>{draw(report)}</div>")
    parts.append("</div><h2>Budgets: spend against the limit in the current window</h2>")
    if not report.budgets:
        parts.append("<p class='meta'>No budget is set (agentqueue budget set ...).</p>")
    parts.append("<div class='cards'>")
    for index, budget in enumerate(report.budgets):
        parts.append(
            f"<div class='card'><h3>{escape(budget.scope)} · {escape(budget.period)}: "
            f"{format_usd(budget.spent_usd)} spent + {format_usd(budget.reserved_usd)} reserved of "
            f"{format_usd(budget.limit_usd)} ({share(float(budget.utilisation))})</h3>"
            f"{charts.budget_burn(budget, index)}</div>"
        )
    parts.append("</div></body></html>")
    return "\n".join(parts)


def _period(report: SpendReport) -> str:
    return (
        f"{report.days[0]} to {report.days[-1]} ({report.timezone}), "
        f"generated {report.until:%Y-%m-%d %H:%M} UTC"
    )


def _totals(report: SpendReport) -> str:
    answered = sum(report.answered_by_day.values())
    hits = sum(sum(days.values()) for days in report.cache_hits.values())
    boxes = [
        ("spent", format_usd(report.total_spent)),
        ("saved", format_usd(report.total_saved)),
        ("jobs answered", str(answered)),
        ("cache hits", f"{hits} ({share(hits / answered) if answered else '0.0%'})"),
        ("deferred now", str(report.deferred_now)),
    ]
    return (
        "<div class='totals'>"
        + "".join(f"<div class='total'>{escape(k)}<b>{escape(v)}</b></div>" for k, v in boxes)
        + "</div>"
    )


def write_html(report: SpendReport, path: Path) -> Path:
    """Write the page (creating its directory); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path
