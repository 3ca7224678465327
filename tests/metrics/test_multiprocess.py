"""`agentqueue worker` with several processes: one /metrics sums what every process counted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from agentqueue.metrics import names
from tests.support.pipeline import Pipeline, simple_job
from tests.support.services import free_port


def _scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, ConnectionError):
        return None


def _jobs_total(text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == f"{names.JOBS}_total"
    )


def test_worker_command_sums_its_processes_metrics(pipeline: Pipeline, tmp_path: Path) -> None:
    """Given PROMETHEUS_MULTIPROC_DIR holding values of an earlier run and a worker of two
    prefork processes, the scrape counts exactly this run's jobs, done by both processes."""
    multiproc_dir = tmp_path / "multiproc"
    multiproc_dir.mkdir()
    (multiproc_dir / "counter_99999999.db").write_bytes(b"stale values of an earlier run")
    port = free_port()
    env = {
        **os.environ,
        **pipeline.env,
        "AGENTQUEUE_METRICS_PORT": str(port),
        "AGENTQUEUE_WORKER_POOL": "prefork",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "agentqueue.cli", "worker", "-c", "2", "-l", "WARNING"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while _scrape(port) is None:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker never served /metrics"
            time.sleep(0.3)
        handles = pipeline.queue.submit_many([simple_job(i) for i in range(24)], packed=False)
        results = pipeline.queue.wait([h.id for h in handles], timeout=90)
        assert len(results) == 24

        # A group is counted just after its results are published: wait for the last one.
        text = _scrape(port)
        deadline = time.monotonic() + 15
        while text is not None and _jobs_total(text) < 24 and time.monotonic() < deadline:
            time.sleep(0.2)
            text = _scrape(port)
        assert text is not None
        assert _jobs_total(text) == 24
        writers = {p.stem.rsplit("_", 1)[1] for p in multiproc_dir.glob("counter_*.db")}
        assert "99999999" not in writers
        assert len(writers) >= 2, writers
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
        log.close()
