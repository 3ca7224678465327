"""The autoscaler: a real resizable threads pool, queue depth from real Redis, budget pressure.

The decision rule itself is tested in tests/scheduler/test_scaling.py; here it drives a pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from redis.backoff import NoBackoff
from redis.retry import Retry

from agentqueue.constants import BUDGET_UTILISATION_KEY, QUEUES
from agentqueue.scheduler.pools import DEFAULT_POOLS
from agentqueue.scheduler.scaling import ScalingConfig
from agentqueue.settings import get_settings, load_settings
from agentqueue.workers.autoscaler import AgentQueueAutoscaler
from agentqueue.workers.thread_pool import ResizableThreadPool

BATCH = DEFAULT_POOLS[1]


class Jobs:
    """Blocking jobs to occupy pool slots, recording how many ran at once."""

    def __init__(self, pool: ResizableThreadPool) -> None:
        self.pool = pool
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.finished = 0

    def _job(self) -> None:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.release.wait(10)
        with self._lock:
            self.running -= 1
            self.finished += 1

    def submit(self, count: int) -> None:
        for _ in range(count):
            self.pool.apply_async(self._job, callback=lambda _result: None)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@pytest.fixture
def pool() -> Iterator[ResizableThreadPool]:
    started = ResizableThreadPool(limit=1)
    started.start()
    yield started
    started.stop()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_thread_pool_runs_at_most_its_size_and_can_change_it(pool: ResizableThreadPool) -> None:
    # Given a pool of 1 and 5 blocking jobs, Then only one runs
    jobs = Jobs(pool)
    jobs.submit(5)
    wait_until(lambda: jobs.running == 1)
    time.sleep(0.1)
    assert jobs.running == 1 and pool.busy == 1
    # When grown by 3, Then 4 run at once
    pool.grow(3)
    wait_until(lambda: jobs.running == 4)
    assert pool.num_processes == 4 and pool.info["max-concurrency"] == 4
    # When shrunk to 2 and the jobs released, Then later jobs never exceed 2 at once
    pool.shrink(2)
    jobs.release.set()
    wait_until(lambda: jobs.finished == 5)
    later = Jobs(pool)
    later.submit(6)
    wait_until(lambda: later.running == 2)
    time.sleep(0.1)
    later.release.set()
    wait_until(lambda: later.finished == 6)
    assert later.most_at_once == 2


def test_thread_pool_can_start_empty_and_stop_with_jobs_waiting() -> None:
    # Given `--autoscale N,0`: a pool of 0 slots holds work without running it
    pool = ResizableThreadPool(limit=0)
    pool.start()
    jobs = Jobs(pool)
    jobs.submit(2)
    time.sleep(0.1)
    assert jobs.running == 0
    with pytest.raises(ValueError):
        pool.shrink(1)
    # When stopped, Then waiting jobs give up (their messages would be redelivered)
    pool.stop()
    assert jobs.finished == 0


def make_scaler(
    pool: ResizableThreadPool, client: redis.Redis, clock: Clock, **options: Any
) -> AgentQueueAutoscaler:
    return AgentQueueAutoscaler(
        pool,
        8,
        1,
        settings=load_settings(),
        pool_spec=BATCH,
        config=ScalingConfig(cooldown_s=300),
        redis_client=client,
        clock=clock,
        **options,
    )


def test_autoscaler_grows_with_redis_queue_depth_and_yields_to_the_budget(
    pool: ResizableThreadPool, client: redis.Redis
) -> None:
    # Given a batch worker at 1 slot, busy, with 20 messages waiting in agentqueue.low
    # (and 5 in agentqueue.normal, which the batch pool does not consume)
    clock = Clock()
    scaler = make_scaler(pool, client, clock)
    client.rpush("agentqueue.low", *[f"message-{i}" for i in range(20)])
    client.rpush("agentqueue.normal", *[f"message-{i}" for i in range(5)])
    jobs = Jobs(pool)
    jobs.submit(8)
    wait_until(lambda: pool.busy == 1)

    # When the autoscaler runs, Then it grows by the backlog, capped by --autoscale max 8
    scaler.maybe_scale()
    assert pool.num_processes == 8
    wait_until(lambda: jobs.running == 8)
    info = scaler.info()
    assert (info["pool"], info["queue_depth"], info["current"], info["target"]) == (
        "batch",
        20,
        8,
        8,
    )
    assert info["held_by_budget"] is False

    # When beat publishes 97% utilisation a moment later, inside the cooldown
    client.set(BUDGET_UTILISATION_KEY, "0.97")
    clock.advance(2)
    scaler.maybe_scale()
    # Then the batch pool drops to its min at once, and new work runs one at a time
    assert pool.num_processes == 1
    assert scaler.info()["held_by_budget"] is True and scaler.info()["utilisation"] == "0.97"
    jobs.release.set()
    wait_until(lambda: jobs.finished == 8)
    later = Jobs(pool)
    later.submit(3)
    wait_until(lambda: later.running == 1)
    clock.advance(2)
    scaler.maybe_scale()
    assert pool.num_processes == 1

    # When utilisation falls (a new budget window), Then it grows straight back to 8
    client.set(BUDGET_UTILISATION_KEY, "0.10")
    clock.advance(2)
    scaler.maybe_scale()
    assert pool.num_processes == 8
    wait_until(lambda: later.running == 3)
    later.release.set()


def test_evaluations_are_throttled_and_cooldown_is_respected(
    pool: ResizableThreadPool, client: redis.Redis
) -> None:
    # Given a busy pool and waiting work
    clock = Clock()
    scaler = make_scaler(pool, client, clock)
    client.rpush("agentqueue.low", "a", "b")
    jobs = Jobs(pool)
    jobs.submit(3)
    wait_until(lambda: pool.busy == 1)
    scaler.maybe_scale()
    assert pool.num_processes == 3  # +2 (step beats the backlog of 2)
    # When a burst of task messages calls it again within the second, Then nothing is read
    client.rpush("agentqueue.low", *range(30))
    scaler.maybe_scale()
    assert scaler.info()["queue_depth"] == 2
    # And later calls inside the 5-minute cooldown change nothing
    clock.advance(60)
    scaler.maybe_scale()
    assert pool.num_processes == 3 and scaler.info()["queue_depth"] == 32
    wait_until(lambda: pool.busy == 3)
    clock.advance(241)
    scaler.maybe_scale()
    assert pool.num_processes == 8
    jobs.release.set()


def test_unreadable_utilisation_keeps_the_last_reading(
    pool: ResizableThreadPool, client: redis.Redis
) -> None:
    # Given the budget held the pool at min
    clock = Clock()
    scaler = make_scaler(pool, client, clock)
    pool.grow(4)
    client.set(BUDGET_UTILISATION_KEY, "0.99")
    scaler.maybe_scale()
    assert pool.num_processes == 1
    # When the key holds garbage, Then the last reading stands: no release on bad data
    client.set(BUDGET_UTILISATION_KEY, "lots")
    clock.advance(2)
    scaler.maybe_scale()
    assert pool.num_processes == 1
    assert scaler.info()["utilisation"] == "0.99"
    # And a missing key means no pressure: the pool returns to its earlier 5 slots
    client.delete(BUDGET_UTILISATION_KEY)
    clock.advance(2)
    scaler.maybe_scale()
    assert pool.num_processes == 5


def test_unreachable_redis_means_no_change(pool: ResizableThreadPool) -> None:
    # Given Redis that cannot be reached, When the autoscaler runs, Then the pool stays put
    unreachable = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    scaler = make_scaler(pool, unreachable, Clock())
    assert scaler._maybe_scale() is False
    assert pool.num_processes == 1


def test_injected_utilisation_source_replaces_the_redis_key(
    pool: ResizableThreadPool, client: redis.Redis
) -> None:
    # Given the ledger's utilisation injected as a callable
    pool.grow(3)
    scaler = make_scaler(pool, client, Clock(), utilisation=lambda: Decimal("0.95"))
    client.set(BUDGET_UTILISATION_KEY, "0")
    scaler.maybe_scale()
    assert pool.num_processes == 1


# A real Celery worker, in this process, configured the way production selects our classes.


@pytest.fixture
def worker_environment(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The autoscaler (and any worker hooks) read `get_settings()`: point it at test places."""
    monkeypatch.setenv("AGENTQUEUE_REDIS_URL", redis_url)
    monkeypatch.setenv("AGENTQUEUE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AGENTQUEUE_AUTOSCALE_CHECK_INTERVAL_S", "0.1")
    monkeypatch.setenv("AGENTQUEUE_AUTOSCALE_COOLDOWN_S", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("worker_environment")
def test_a_celery_worker_scales_its_batch_pool_under_budget_pressure(
    redis_url: str, client: redis.Redis
) -> None:
    # Given a batch worker (consuming agentqueue.low, --autoscale 6,1) with our pool/autoscaler
    app = Celery("autoscale-test", broker=redis_url, set_as_current=False)
    app.conf.update(
        task_queues={name: {"routing_key": name} for name in QUEUES},
        worker_autoscaler="agentqueue.workers.autoscaler:AgentQueueAutoscaler",
        worker_prefetch_multiplier=1,
        task_acks_late=True,
        accept_content=["json"],
    )
    gate = threading.Event()

    @app.task(name="autoscale-test.block")
    def block() -> None:
        gate.wait(10)

    def autoscaler_info() -> dict[str, Any]:
        replies: dict[str, Any] = dict(app.control.inspect(timeout=2, limit=1).stats() or {})
        return next(iter(replies.values()))["autoscaler"]

    with start_worker(
        app,
        pool="agentqueue.workers.thread_pool:ResizableThreadPool",
        concurrency=6,
        autoscale=(6, 1),
        queues=["agentqueue.low"],
        perform_ping_check=False,
        loglevel="WARNING",
    ):
        try:
            # When 12 blocking tasks arrive, Then the worker grows to its max, seen by inspect
            for _ in range(12):
                block.apply_async(queue="agentqueue.low")
            wait_until(lambda: autoscaler_info()["current"] == 6, timeout=10)
            assert autoscaler_info()["pool"] == "batch"
            # When utilisation reaches 96%, Then it drops to its min
            client.set(BUDGET_UTILISATION_KEY, "0.96")
            wait_until(lambda: autoscaler_info()["current"] == 1, timeout=10)
            assert autoscaler_info()["held_by_budget"] is True
            # When it falls again, Then it grows back
            client.set(BUDGET_UTILISATION_KEY, "0.20")
            wait_until(lambda: autoscaler_info()["current"] == 6, timeout=10)
        finally:
            gate.set()
