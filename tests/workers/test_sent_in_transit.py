"""A request that failed in transit after it may have reached the provider is charged, not
forgotten: the executor on a real SQLite file, Redis and the local LLM server over HTTP, then
real worker processes on PostgreSQL.

The server's `disconnect` fault reads (and counts) a request, then hangs up without a reply:
the provider may have billed it. The job's settlement charges each such request at the job's
reservation on top of its own usage (`possible_repeat_usd`, `charge_reason`
"possibly_repeated: ..."), whether the call was then answered or failed for good. A job that
moves to a fallback model is charged for them as it leaves the model, on a row of their own
(state `unknown_calls`), whatever happens to it at the fallback.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select

from agentqueue.budget.budget_limits import set_budget
from agentqueue.budget.gate import AdmissionGroup, BudgetGate
from agentqueue.budget.periods import window_for
from agentqueue.budget.possible_repeats import (
    IN_TRANSIT_REPEAT_REASON,
    POSSIBLE_REPEAT_REASON,
    PossibleRepeat,
)
from agentqueue.cache.entry import CacheEntry
from agentqueue.constants import CARRIED_CALLS_PREFIX, PENDING_ANSWER_PREFIX
from agentqueue.errors import DatabaseUnavailable
from agentqueue.jobs import AgentJob, JobStatus, utcnow
from agentqueue.metrics import names
from agentqueue.persistence.engine import dispose_all
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from agentqueue.persistence.usage_backfill import usage_from_entries
from agentqueue.persistence.usage_rows import USAGE
from agentqueue.providers import ProviderError
from agentqueue.settings import load_settings
from agentqueue.testing.llm_server import LLMTestServer
from agentqueue.usage import TokenUsage
from agentqueue.workers.answer_journal import AnswerJournal
from agentqueue.workers.context import WorkerContext
from agentqueue.workers.executor import BatchExecutor
from agentqueue.workers.kept_answer import KeptAnswer
from agentqueue.workers.pending_answers import PendingAnswers
from tests.metrics.test_worker_metrics import as_money, scrape, total
from tests.support.pipeline import Pipeline, simple_job
from tests.support.services import free_port
from tests.workers.test_executor import (
    CountingProvider,
    DatabaseAway,
    counting_context,
    database_dir,
    entry_rows,
    job_rows,
    provider_of,
    queued,
)
from tests.workers.test_openai_provider_e2e import API_KEY, openai_env

__all__ = ["database_dir"]  # the fixture, shared with the executor tests

DROP_FIRST = "disconnect,first=1"
PRIMARY = "gpt-4o-mini"
FALLBACK = "gpt-4o"  # its worst case ($0.0103) does not fit a $0.003 budget; the primary's does


@pytest.fixture
def llm_server() -> Iterator[LLMTestServer]:
    with LLMTestServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def context(
    redis_url: str, database_dir: Path, llm_server: LLMTestServer
) -> Iterator[WorkerContext]:
    """A worker's context whose provider is the OpenAI-compatible client of `llm_server`."""
    settings = load_settings(
        redis_url=redis_url,
        database_url=f"sqlite:///{database_dir / 'agentqueue.db'}",
        provider="openai",
        openai_base_url=llm_server.base_url,
        openai_api_key=API_KEY,
        provider_backoff_base_s=0.01,
        provider_backoff_max_s=0.05,
        provider_max_attempts=3,
    )
    yield from counting_context(settings)


def assert_charged_in_transit(entry: LedgerEntryRecord, calls: int = 1) -> None:
    assert entry.state == "settled"
    assert entry.reserved_usd > 0
    assert entry.possible_repeat_usd == entry.reserved_usd * calls
    assert entry.charge_reason == IN_TRANSIT_REPEAT_REASON


def test_a_dropped_request_then_an_answer_is_charged_as_possibly_repeated(
    context: WorkerContext, llm_server: LLMTestServer
) -> None:
    """Given a server that drops the first request after reading it, when a job runs, then it
    succeeds on the provider call's second request, the server counted two, and the job is
    charged its usage plus its reservation for the dropped request."""
    llm_server.add_fault(DROP_FIRST)
    [job_id] = queued(context, 1)

    report = BatchExecutor(context).run([job_id])

    assert (report.retry, report.failed) == ({}, {})
    assert llm_server.requests_received == 2
    assert job_rows(context)[job_id].status == JobStatus.SUCCEEDED.value
    entry = entry_rows(context)[job_id]
    assert_charged_in_transit(entry)
    assert entry.output_tokens > 0 and entry.cost_usd > entry.possible_repeat_usd
    assert context.results.fetch([job_id])[job_id].cost == entry.cost_usd


def test_every_request_dropped_fails_the_job_and_charges_its_reservation(
    context: WorkerContext, llm_server: LLMTestServer
) -> None:
    """Given a server that drops every request, when a job runs, then it fails after three
    requests, and its reservation is charged (settled as possibly repeated), not released."""
    llm_server.add_fault("disconnect")
    [job_id] = queued(context, 1)

    report = BatchExecutor(context).run([job_id])

    assert list(report.failed) == [job_id]
    assert llm_server.requests_received == 3
    assert job_rows(context)[job_id].status == JobStatus.FAILED.value
    entry = entry_rows(context)[job_id]
    assert_charged_in_transit(entry, calls=3)  # each dropped request may have been billed
    assert entry.cost_usd == 3 * entry.reserved_usd and entry.output_tokens == 0


def test_a_job_that_forbids_repeats_is_not_sent_again_after_a_dropped_request(
    context: WorkerContext, llm_server: LLMTestServer
) -> None:
    """Given a job with `"repeatable": false` and a server that drops its first request after
    reading it, when the job runs, then the request is not sent again: the job fails with
    `call_outcome_unknown`, the server counted one request, and the job is charged its
    reservation for it."""
    llm_server.add_fault(DROP_FIRST)
    [job_id] = queued(context, 1, repeatable=False)

    report = BatchExecutor(context).run([job_id])

    assert list(report.failed) == [job_id] and report.retry == {}
    assert report.failed[job_id].code == "call_outcome_unknown"
    assert llm_server.requests_received == 1
    assert job_rows(context)[job_id].status == JobStatus.FAILED.value
    entry = entry_rows(context)[job_id]
    assert_charged_in_transit(entry)
    assert entry.cost_usd == entry.reserved_usd


def test_an_answer_kept_while_the_ledger_is_down_keeps_its_dropped_request(
    context: WorkerContext, llm_server: LLMTestServer, database_dir: Path, tmp_path: Path
) -> None:
    """Given a job answered after a dropped request, whose database goes away before the
    settlement, when the retry settles it from the kept answer (no new call), then the dropped
    request is charged too: the journal kept it with the answer."""
    llm_server.add_fault(DROP_FIRST)
    [job_id] = queued(context, 1)
    outage = DatabaseAway(database_dir, tmp_path / "away")
    provider = context.provider
    assert isinstance(provider, CountingProvider)
    provider.after = outage
    first = BatchExecutor(context).run([job_id])
    assert isinstance(first.retry[job_id], DatabaseUnavailable)
    provider.after = None
    outage.back()

    second = BatchExecutor(context).run([job_id])

    assert (second.retry, second.failed) == ({}, {})
    assert llm_server.requests_received == 2 and provider.calls == 1
    assert job_rows(context)[job_id].status == JobStatus.SUCCEEDED.value
    entry = entry_rows(context)[job_id]
    # Charged once for the dropped request: the attempt that died left its reservation, but
    # its answer was kept, so no call of its own is unknown.
    assert_charged_in_transit(entry)
    assert context.redis.exists(f"{PENDING_ANSWER_PREFIX}{job_id}") == 0


def test_a_carried_over_call_is_charged_when_the_retry_settles_from_a_kept_answer(
    context: WorkerContext, llm_server: LLMTestServer, database_dir: Path, tmp_path: Path
) -> None:
    """Given a job whose first attempt fails with a retryable error after its request may
    have been sent, then its reservation is kept (not released) for the retry; when that
    retry is answered but its database goes away before settling, and a third attempt settles
    from the kept answer, then the first attempt's call is still charged at the reservation."""
    [job_id] = queued(context, 1)
    provider = context.provider
    assert isinstance(provider, CountingProvider)

    def dropped() -> None:
        raise ProviderError("connection dropped", retryable=True, maybe_sent=1)

    provider.before = dropped
    first = BatchExecutor(context).run([job_id])
    assert list(first.retry) == [job_id]
    assert entry_rows(context)[job_id].state == "reserved"  # kept, not released

    outage = DatabaseAway(database_dir, tmp_path / "away")
    provider.before, provider.after = None, outage
    second = BatchExecutor(context).run([job_id])
    assert isinstance(second.retry[job_id], DatabaseUnavailable)
    provider.after = None
    outage.back()

    third = BatchExecutor(context).run([job_id])

    assert (third.retry, third.failed) == ({}, {})
    assert llm_server.requests_received == 1 and provider.calls == 2
    record = job_rows(context)[job_id]
    assert record.status == JobStatus.SUCCEEDED.value and record.attempts == 3
    entry = entry_rows(context)[job_id]
    assert entry.state == "settled" and entry.output_tokens > 0
    assert entry.possible_repeat_usd == entry.reserved_usd > 0
    assert entry.charge_reason == POSSIBLE_REPEAT_REASON


def test_a_retry_charges_every_request_its_earlier_attempt_dropped_not_just_one(
    context: WorkerContext, llm_server: LLMTestServer
) -> None:
    """Given a job whose first attempt fails with a retryable error after three of its
    requests may have reached the provider, its reservation stands for the retry; when the
    retry is answered, then its settlement charges all three at the reservation (not the one
    call a standing reservation alone tells of), and the count is gone once settled."""
    [job_id] = queued(context, 1)
    provider = provider_of(context)

    def three_dropped() -> None:
        raise ProviderError("connection dropped, then 503", retryable=True, maybe_sent=3)

    provider.before = three_dropped
    first = BatchExecutor(context).run([job_id])
    assert list(first.retry) == [job_id]
    assert entry_rows(context)[job_id].state == "reserved"
    assert context.redis.get(f"{CARRIED_CALLS_PREFIX}{job_id}") == b"3"
    provider.before = None

    second = BatchExecutor(context).run([job_id])

    assert (second.retry, second.failed) == ({}, {})
    assert provider.calls == 2 and llm_server.requests_received == 1
    entry = entry_rows(context)[job_id]
    assert entry.state == "settled" and entry.output_tokens > 0
    assert entry.possible_repeat_usd == 3 * entry.reserved_usd > 0
    assert entry.charge_reason == PossibleRepeat(carried_over=True, in_transit=2).reason
    assert context.redis.exists(f"{CARRIED_CALLS_PREFIX}{job_id}") == 0


def test_a_carried_count_is_kept_dropped_and_falls_back_to_none_when_unreadable(
    context: WorkerContext,
) -> None:
    """Counts are kept and dropped per job; a value that is not a count, or a Redis that
    cannot be reached, reads as no count (the retry then charges one call) and never
    raises."""
    journal = context.journal
    journal.carry({"a": 3, "b": 2})
    context.redis.set(f"{CARRIED_CALLS_PREFIX}c", b"x7")
    assert journal.carried(["a", "b", "c", "d"]) == {"a": 3, "b": 2}
    journal.carry({"b": 0})
    assert journal.carried(["a", "b"]) == {"a": 3}
    assert 0 < context.redis.ttl(f"{CARRIED_CALLS_PREFIX}a") <= journal.store.ttl_s
    away = AnswerJournal(
        context.sessions,
        PendingAnswers(redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0)), ttl_s=60),
    )
    away.carry({"a": 2})
    assert away.carried(["a"]) == {}


def test_a_release_the_ledger_could_not_write_leaves_every_dropped_request_to_the_retry(
    context: WorkerContext, llm_server: LLMTestServer, database_dir: Path, tmp_path: Path
) -> None:
    """Given a primary model that drops every request, and a database that goes away while
    the job's call is made, then the job cannot be moved to its fallback (the release is not
    written) and comes back with its primary reservation standing; when the retry's call at
    the primary is answered, then each of the three dropped requests is charged at that
    reservation, counted at the test server."""
    llm_server.add_fault(f"disconnect,model={PRIMARY}")
    [job_id] = queued(context, 1, fallbacks=[FALLBACK])
    provider = provider_of(context)
    outage = DatabaseAway(database_dir, tmp_path / "away")
    provider.before = outage
    first = BatchExecutor(context).run([job_id])
    assert isinstance(first.retry[job_id], DatabaseUnavailable)
    assert [a.model for a in llm_server.arrivals] == [PRIMARY] * 3
    provider.before = None
    outage.back()
    llm_server.faults.clear()

    second = BatchExecutor(context).run([job_id])

    assert (second.retry, second.failed) == ({}, {})
    assert [a.model for a in llm_server.arrivals] == [PRIMARY] * 4
    entries = entry_rows(context)
    entry = entries[job_id]
    assert (entry.state, entry.model) == ("settled", PRIMARY)
    assert entry.possible_repeat_usd == 3 * entry.reserved_usd > 0
    assert charged_apart(entries, job_id) == []


def test_a_job_moving_to_its_fallback_after_a_dropped_request_is_charged_for_it(
    context: WorkerContext, llm_server: LLMTestServer
) -> None:
    """Given a primary model whose every request is dropped after arrival, when a job with a
    fallback runs, then it finishes on the fallback and is charged its usage there, and each
    dropped request at the primary's reservation, on a row of its own written when the
    primary's reservation was released (its entry is then reserved again at the fallback)."""
    llm_server.add_fault(f"disconnect,model={PRIMARY}")
    [job_id] = queued(context, 1, fallbacks=[FALLBACK])

    report = BatchExecutor(context).run([job_id])

    assert (report.retry, report.failed) == ({}, {})
    models = [a.model for a in llm_server.arrivals]
    assert models == [PRIMARY] * 3 + [FALLBACK]
    record = job_rows(context)[job_id]
    assert record.status == JobStatus.SUCCEEDED.value
    entries = entry_rows(context)
    entry = entries[job_id]
    assert (entry.state, entry.model, entry.possible_repeat_usd) == ("settled", FALLBACK, 0)
    result = context.results.fetch([job_id])[job_id]
    assert entry.cost_usd > 0 and result.cost == entry.cost_usd  # the job's own entry
    assert f"3 call(s) of unknown outcome at {PRIMARY} charged apart" in str(result.model_reason)
    [apart] = charged_apart(entries, job_id)
    assert_charged_apart(apart, calls=3, per_call=primary_reservation(context))


def test_a_job_refused_at_its_fallback_after_a_dropped_request_is_still_charged(
    context: WorkerContext, llm_server: LLMTestServer
) -> None:
    """Given a primary model whose every request is dropped, and a tenant budget with room
    for the primary's reservation but not the fallback's, when the job runs, then it is
    refused at the fallback (budget_exceeded) and still charged the primary's reservation
    for each dropped request, on a row of their own in the tenant's usage row; the job's
    entry stays released."""
    set_budget(
        context.sessions,
        "tenant:tight",
        "daily",
        Decimal("0.003"),
        now=utcnow(),
        timezone=context.settings.timezone,
    )
    llm_server.add_fault(f"disconnect,model={PRIMARY}")
    [job_id] = queued(context, 1, fallbacks=[FALLBACK], tenant="tight")

    BatchExecutor(context).run([job_id])

    assert [a.model for a in llm_server.arrivals] == [PRIMARY] * 3
    record = job_rows(context)[job_id]
    assert record.status == JobStatus.REJECTED.value and record.error_code == "budget_exceeded"
    entries = entry_rows(context)
    entry = entries[job_id]
    assert (entry.state, entry.model, entry.cost_usd) == ("released", PRIMARY, 0)
    [apart] = charged_apart(entries, job_id)
    assert_charged_apart(apart, calls=3, per_call=entry.reserved_usd)
    assert tight_usage(context) == (apart.cost_usd, 0)
    result = context.results.fetch([job_id])[job_id]
    assert result.cost == 0 and "charged apart" in str(result.model_reason)
    assert_recount_matches(context)


def test_a_job_waiting_at_its_fallback_after_dropped_requests_is_charged_for_them_apart(
    context: WorkerContext, llm_server: LLMTestServer
) -> None:
    """Given a primary model whose every request is dropped, and a tenant budget whose room
    for the fallback is held by another job's reservation (so the job waits, not refused),
    when the job runs, then its three dropped requests are charged at once, at the primary's
    released reservation, on a ledger row of their own in the budget's usage row; when the
    reservation holding the room is released and the job runs again, it drops three more
    (charged the same way), finishes on the fallback and is charged its usage on its own
    entry: every dropped request charged once, and the usage row equals a recount."""
    now = utcnow()
    set_budget(
        context.sessions,
        "tenant:tight",
        "daily",
        Decimal("0.015"),
        now=now,
        timezone=context.settings.timezone,
    )
    holder = AgentJob.model_validate(
        simple_job(99, model=FALLBACK, tenant="tight", params={"max_tokens": 800})
    )
    [held] = context.gate.admit_groups([AdmissionGroup([holder], now, "standard", False)])[0:1]
    assert [a.decision for a in held] == ["run"]
    llm_server.add_fault(f"disconnect,model={PRIMARY}")
    [job_id] = queued(context, 1, fallbacks=[FALLBACK], tenant="tight")

    report = BatchExecutor(context).run([job_id])

    assert list(report.waiting) == [job_id] and report.failed == {}
    assert [a.model for a in llm_server.arrivals] == [PRIMARY] * 3
    assert job_rows(context)[job_id].status == JobStatus.QUEUED.value
    entries = entry_rows(context)
    own = entries[job_id]
    assert (own.state, own.model, own.cost_usd) == ("released", PRIMARY, 0)
    [apart] = charged_apart(entries, job_id)
    assert_charged_apart(apart, calls=3, per_call=own.reserved_usd)
    assert apart.tenant == "tight"
    assert (apart.day, apart.reserved_at) == (own.day, own.reserved_at)
    assert tight_usage(context) == (apart.cost_usd, entries[holder.id].reserved_usd)
    assert_recount_matches(context)
    per_call = own.reserved_usd

    context.gate.release_many([holder.id])
    BatchExecutor(context).run([job_id])

    assert [a.model for a in llm_server.arrivals] == [PRIMARY] * 6 + [FALLBACK]
    assert job_rows(context)[job_id].status == JobStatus.SUCCEEDED.value
    entries = entry_rows(context)
    own = entries[job_id]
    assert (own.state, own.model, own.possible_repeat_usd) == ("settled", FALLBACK, 0)
    rows = charged_apart(entries, job_id)
    assert len(rows) == 2  # one per run that left the primary
    for row in rows:
        assert_charged_apart(row, calls=3, per_call=per_call)
    assert context.results.fetch([job_id])[job_id].cost == own.cost_usd
    assert tight_usage(context) == (own.cost_usd + 6 * per_call, Decimal(0))
    assert_recount_matches(context)


def charged_apart(entries: dict[str, LedgerEntryRecord], job_id: str) -> list[LedgerEntryRecord]:
    """The rows of calls of unknown outcome charged apart from `job_id`'s entry."""
    prefix = f"{job_id}:unknown-calls:"
    return [entry for key, entry in entries.items() if key.startswith(prefix)]


def assert_charged_apart(row: LedgerEntryRecord, *, calls: int, per_call: Decimal) -> None:
    assert (row.state, row.model) == ("unknown_calls", PRIMARY)
    assert row.cost_usd == row.possible_repeat_usd == calls * per_call > 0
    assert row.charge_reason == IN_TRANSIT_REPEAT_REASON


def primary_reservation(context: WorkerContext) -> Decimal:
    """What `queued(context, 1, ...)`'s job reserves on the primary: a twin's reservation."""
    twin = AgentJob.model_validate(simple_job(0))
    [[admission]] = context.gate.admit_groups([AdmissionGroup([twin], utcnow(), "standard", False)])
    context.gate.release_many([twin.id])
    return admission.reservation.reserved_usd


def tight_usage(context: WorkerContext) -> tuple[Decimal, Decimal]:
    """(spent, reserved) of tenant:tight's daily usage row."""
    with context.sessions() as session:
        row = session.execute(
            select(USAGE.c.spent_usd, USAGE.c.reserved_usd).where(
                USAGE.c.scope == "tenant:tight", USAGE.c.period == "daily"
            )
        ).one()
    return row.spent_usd, row.reserved_usd


def assert_recount_matches(context: WorkerContext) -> None:
    """The live usage row equals a recount of the ledger entries (what a backfill writes)."""
    window = window_for("daily", utcnow(), context.settings.timezone)
    with context.sessions() as session:
        recount = usage_from_entries(session, "tenant:tight", window)
    assert recount == tight_usage(context)


def test_a_kept_answer_round_trips_and_reads_as_a_plain_entry() -> None:
    """Given answers with and without calls of unknown outcome (one whose output quotes the
    key), then each reads back as written, and a plain cache entry reads as none."""
    entry = CacheEntry(
        output='say ,"possibly_repeated":7 please',
        model="gpt-4o-mini",
        provider="openai",
        usage=TokenUsage(3, 4, 0),
    )
    for kept in (KeptAnswer(entry), KeptAnswer(entry, 2), KeptAnswer(entry, 1, True)):
        payload = kept.to_json()
        assert KeptAnswer.from_json(payload) == kept
        assert CacheEntry.from_json(payload) == entry  # what an older reader gets
    assert KeptAnswer.from_json(entry.to_json()) == KeptAnswer(entry)


def test_a_peer_answer_is_not_charged_for_the_leaders_dropped_request(
    redis_url: str, database_dir: Path
) -> None:
    """Given two identical deterministic jobs in one batch and a server that drops the first
    request, when they run, then one calls (and is charged the dropped request) and the other
    takes its answer through single-flight, as a cache hit charged nothing."""
    with LLMTestServer(api_key=API_KEY, latency_ms=300) as server:
        server.add_fault(DROP_FIRST)
        settings = load_settings(
            redis_url=redis_url,
            database_url=f"sqlite:///{database_dir / 'agentqueue.db'}",
            provider="openai",
            openai_base_url=server.base_url,
            openai_api_key=API_KEY,
            provider_backoff_base_s=0.01,
            provider_backoff_max_s=0.05,
        )
        context = WorkerContext.build(settings)
        try:
            ids = queued(context, 1, params={"temperature": 0}) + queued(
                context, 1, params={"temperature": 0}
            )
            report = BatchExecutor(context).run(ids)
            entries = entry_rows(context)
            received = server.requests_received
        finally:
            context.close()
            dispose_all()
    assert (report.retry, report.failed) == ({}, {})
    assert received == 2
    leader = [e for e in entries.values() if e.state == "settled"]
    follower = [e for e in entries.values() if e.state == "cache_hit"]
    assert len(leader) == len(follower) == 1, {e.job_id: e.state for e in entries.values()}
    assert_charged_in_transit(leader[0])
    assert follower[0].cost_usd == 0 and follower[0].possible_repeat_usd == 0
    assert follower[0].charge_reason is None


# Real worker processes -------------------------------------------------------------------


def ledger_entries(pipeline: Pipeline) -> dict[str, LedgerEntryRecord]:
    with pipeline.queue.sessions() as session:
        return {e.job_id: e for e in session.scalars(select(LedgerEntryRecord)).all()}


def test_workers_charge_dropped_requests_whether_the_job_succeeds_or_fails(
    pipeline: Pipeline, llm_server: LLMTestServer
) -> None:
    """Given a worker whose provider drops the first request of one job and every request of
    another (two attempts per call), when both run, then the first succeeds after two calls
    and the second fails after two; each is charged its reservation for a dropped request
    (`possible_repeat_usd`, "possibly_repeated: ..."), the failed one settled, not released."""
    llm_server.add_fault("disconnect,contains=ONCE,first=1")
    llm_server.add_fault("disconnect,contains=ALWAYS")
    once = simple_job(1, messages=[{"role": "user", "content": "drop me ONCE"}])
    always = simple_job(2, messages=[{"role": "user", "content": "drop me ALWAYS"}])
    handles = pipeline.queue.submit_many([once, always], packed=False)
    pipeline.start_worker(
        env=openai_env(llm_server, AGENTQUEUE_PROVIDER_MAX_ATTEMPTS="2"), concurrency=4
    )

    results = pipeline.queue.wait([h.id for h in handles], timeout=60)

    once_id, always_id = (h.id for h in handles)
    entries = ledger_entries(pipeline)
    calls = {
        text: sum(1 for a in llm_server.arrivals if text in a.text) for text in ("ONCE", "ALWAYS")
    }
    assert results[once_id].status is JobStatus.SUCCEEDED, results[once_id].error
    assert calls["ONCE"] == 2
    entry = entries[once_id]
    assert entry.state == "settled" and entry.possible_repeat_usd == entry.reserved_usd > 0
    assert entry.charge_reason and entry.charge_reason.startswith("possibly_repeated")
    assert entry.cost_usd > entry.reserved_usd
    assert results[once_id].cost == entry.cost_usd

    failed = results[always_id]
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.code == "provider_error"
    assert calls["ALWAYS"] == 2 * failed.attempts
    entry = entries[always_id]
    assert entry.state == "settled"  # charged, not released
    assert entry.possible_repeat_usd > 0 and entry.cost_usd >= entry.reserved_usd
    assert entry.charge_reason and entry.charge_reason.startswith("possibly_repeated")


def test_a_worker_retry_charges_both_requests_its_first_attempt_dropped(
    pipeline: Pipeline, llm_server: LLMTestServer
) -> None:
    """Given a worker whose provider drops a job's first two requests and answers the third
    with a 503 asking to wait longer than the worker waits in a call (three attempts per
    call), the job's first attempt ends in a retry with its reservation standing; when the
    retry is answered, then both dropped requests are charged at the reservation, counted at
    the test server, not the one call a standing reservation alone tells of."""
    llm_server.add_fault("disconnect,contains=TWICE,first=2")
    llm_server.add_fault("status=503,retry_after=1,contains=TWICE,first=1")
    job = simple_job(1, messages=[{"role": "user", "content": "drop me TWICE"}])
    [handle] = pipeline.queue.submit_many([job], packed=False)
    pipeline.start_worker(
        env=openai_env(
            llm_server,
            AGENTQUEUE_PROVIDER_MAX_ATTEMPTS="3",
            AGENTQUEUE_PROVIDER_MAX_RETRY_AFTER_S="0.5",
            AGENTQUEUE_RATE_LIMIT_MAX_WAIT_S="0",  # the job comes back later instead
        ),
        concurrency=2,
    )

    result = pipeline.queue.wait([handle.id], timeout=60)[handle.id]

    assert result.status is JobStatus.SUCCEEDED, result.error
    assert result.attempts >= 2
    assert sum(1 for a in llm_server.arrivals if "TWICE" in a.text) == 4
    entry = ledger_entries(pipeline)[handle.id]
    assert entry.state == "settled" and entry.output_tokens > 0
    assert entry.possible_repeat_usd == 2 * entry.reserved_usd > 0
    assert entry.charge_reason == PossibleRepeat(carried_over=True, in_transit=1).reason
    assert result.cost == entry.cost_usd


def test_workers_charge_each_dropped_request_once_while_a_job_waits_at_its_fallback(
    pipeline: Pipeline, llm_server: LLMTestServer
) -> None:
    """Given a worker whose primary model drops every request, and a tenant budget whose room
    for the fallback is held by another job's reservation, when a job with that fallback
    runs, then it waits and asks again, and each run's dropped requests are charged on a row
    of their own as it leaves the primary; once the room is released it finishes on the
    fallback. Every request the server counted for the primary is charged exactly once, and
    the usage row equals a recount of the entries (PostgreSQL)."""
    settings = pipeline.settings
    set_budget(
        pipeline.queue.sessions,
        "tenant:tight",
        "daily",
        Decimal("0.02"),
        now=utcnow(),
        timezone=settings.timezone,
    )
    gate = BudgetGate(pipeline.queue.sessions, settings)
    holder = AgentJob.model_validate(
        simple_job(99, model=FALLBACK, tenant="tight", params={"max_tokens": 1100})
    )
    [[held]] = gate.admit_groups([AdmissionGroup([holder], utcnow(), "standard", False)])
    assert held.decision == "run"
    llm_server.add_fault(f"disconnect,model={PRIMARY}")
    [handle] = pipeline.queue.submit_many(
        [simple_job(1, fallbacks=[FALLBACK], tenant="tight")], packed=False
    )
    port = free_port()
    pipeline.start_worker(
        env=openai_env(
            llm_server, AGENTQUEUE_PROVIDER_MAX_ATTEMPTS="2", AGENTQUEUE_METRICS_PORT=str(port)
        ),
        concurrency=4,
    )

    def rows() -> list[LedgerEntryRecord]:
        return charged_apart(ledger_entries(pipeline), handle.id)

    deadline = time.monotonic() + 30
    while len(rows()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(rows()) >= 2, "the job did not wait and ask again"
    gate.release_many([holder.id])
    result = pipeline.queue.wait([handle.id], timeout=60)[handle.id]

    assert result.status is JobStatus.SUCCEEDED, result.error
    primary_calls = sum(1 for a in llm_server.arrivals if a.model == PRIMARY)
    fallback_calls = sum(1 for a in llm_server.arrivals if a.model == FALLBACK)
    assert fallback_calls == 1
    apart = rows()
    own = ledger_entries(pipeline)[handle.id]
    assert (own.state, own.model, own.possible_repeat_usd) == ("settled", FALLBACK, 0)
    assert result.cost == own.cost_usd
    assert f"2 call(s) of unknown outcome at {PRIMARY} charged apart" in str(result.model_reason)
    # Each run dropped two requests at the primary, charged at its reservation on a row of
    # their own as the job left it: as many rows as runs, and no request charged twice.
    per_call = apart[0].cost_usd / 2
    for row in apart:
        assert_charged_apart(row, calls=2, per_call=per_call)
    assert primary_calls == 2 * len(apart)
    with pipeline.queue.sessions() as session:
        window = window_for("daily", utcnow(), settings.timezone)
        recount = usage_from_entries(session, "tenant:tight", window)
    spent = own.cost_usd + sum(e.cost_usd for e in apart)
    assert recount == (spent, Decimal(0))
    state = next(s for s in gate.snapshot() if s.scope == "tenant:tight" and s.period == "daily")
    assert (state.spent_usd, state.reserved_usd) == recount
    # The spend series holds what the ledger charged, the rows apart included.
    deadline = time.monotonic() + 15
    spend = scrape(port)[f"{names.SPEND_USD}_total"]
    while total(spend, model=FALLBACK) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        spend = scrape(port)[f"{names.SPEND_USD}_total"]
    assert as_money(total(spend, model=PRIMARY, tenant="tight")) == str(
        sum(e.cost_usd for e in apart)
    )
    assert as_money(total(spend, model=FALLBACK, tenant="tight")) == str(own.cost_usd)
