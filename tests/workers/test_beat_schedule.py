"""Beat's schedule comes from settings, so tests and demos can run it in seconds."""

from __future__ import annotations

from agentqueue.constants import TASK_POLL_PROVIDER_BATCHES, TASK_SUBMIT_PROVIDER_BATCHES
from agentqueue.settings import load_settings
from agentqueue.workers.beat_schedule import beat_schedule
from agentqueue.workers.config import celery_config


def test_cadences_follow_the_settings() -> None:
    """Given AGENTQUEUE_BEAT_*_S, every periodic task runs at that cadence; the provider batch
    tasks are on the schedule and go to the critical queue."""
    settings = load_settings(beat_release_s=2, beat_batches_s=1, beat_maintenance_s=5)
    schedule = beat_schedule(settings)
    by_task = {entry["task"]: entry for entry in schedule.values()}
    assert by_task[TASK_SUBMIT_PROVIDER_BATCHES]["schedule"] == 1
    assert by_task[TASK_POLL_PROVIDER_BATCHES]["schedule"] == 1
    assert schedule["release-deferred"]["schedule"] == 2
    assert schedule["sweep-stale-reservations"]["schedule"] == 5
    assert {e["options"]["queue"] for e in schedule.values()} == {"agentqueue.critical"}
    assert celery_config(settings)["beat_schedule"] == schedule
    assert beat_schedule(load_settings())["release-deferred"]["schedule"] == 60
