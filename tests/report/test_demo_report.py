"""`make demo` (that is, `agentqueue demo`) ends by writing the spend report and its path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agentqueue.demo.report_file import REPORT_NAME
from tests.report import browser


def test_demo_writes_the_html_report_and_prints_its_path(tmp_path: Path) -> None:
    """Given no configured services, the demo's last lines name a report file whose spend
    charts draw the money of the run it just made."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTQUEUE_")}
    env["XDG_DATA_HOME"] = str(tmp_path)
    env["COLUMNS"] = "200"  # keep the printed path on one line

    completed = subprocess.run(
        [sys.executable, "-m", "agentqueue.cli", "demo", "--embedded", "--jobs", "30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = tmp_path / "agentqueue" / REPORT_NAME
    assert f"spend report with charts: {report}" in completed.stdout
    charts = browser.drawn_charts(report)
    for chart in ("spend-model", "spend-agent_type", "spend-tenant", "latency"):
        drawn, kind = charts[chart]
        assert kind == "data" and drawn > 0, chart
