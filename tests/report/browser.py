"""Headless Chromium for report tests: render a page, run a check script, take a screenshot."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support import services

# Each chart's marks that a browser really laid out with a size: "id:drawn:kind" per chart.
CHECK_SCRIPT = """
<script>
const found = [];
for (const chart of document.querySelectorAll('svg.chart')) {
  let drawn = 0;
  for (const mark of chart.querySelectorAll('.mark')) {
    const box = mark.getBBox();
    const points = mark.tagName === 'polyline' ? mark.points.numberOfItems : 2;
    if ((box.width > 0 || box.height > 0) && points > 1) drawn++;
  }
  const kind = chart.classList.contains('empty') ? 'empty' : 'data';
  found.push(chart.dataset.chart + ':' + drawn + ':' + kind);
}
document.body.setAttribute('data-check', found.join(','));
</script>
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    services.require("Chromium", "install the Debian package chromium (.ci/run does)")
    raise AssertionError("unreachable")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "HOME": str(cwd)},
    )


def drawn_charts(page: Path) -> dict[str, tuple[int, str]]:
    """Open a copy of `page` with the check script; chart id -> (marks drawn, data|empty)."""
    probe = page.with_name(f"probe-{page.name}")
    probe.write_text(page.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    completed = _run(["--dump-dom", probe.as_uri()], page.parent)
    assert 'data-check="' in completed.stdout, completed.stderr[-2000:]
    found = completed.stdout.split('data-check="', 1)[1].split('"', 1)[0]
    charts = {}
    for item in found.split(","):
        chart, drawn, kind = item.rsplit(":", 2)
        charts[chart] = (int(drawn), kind)
    return charts


def screenshot(page: Path, target: Path, *, width: int = 1200, height: int = 1700) -> None:
    completed = _run(
        [f"--screenshot={target}", f"--window-size={width},{height}", page.as_uri()], page.parent
    )
    assert target.exists(), completed.stderr[-2000:]
