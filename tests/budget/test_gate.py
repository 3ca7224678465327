"""The budget gate on real SQLite and PostgreSQL: reserve, settle, release, sweep, the ladder."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from agentqueue.budget.alerts import BudgetAlert
from agentqueue.budget.errors import BudgetExceeded
from agentqueue.budget.gate import BudgetGate, CacheHit
from agentqueue.budget.pricing import PriceBook
from agentqueue.budget.state import BudgetState
from agentqueue.errors import DatabaseUnavailable
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.persistence.ledger_tables import LedgerEntryRecord
from agentqueue.settings import load_settings
from agentqueue.usage import TokenUsage
from tests.budget.conftest import NOON, admit, make_job, record_hits, settle

GateFactory = Callable[..., BudgetGate]
Limit = Callable[[str, str, str], None]

# "filler" costs $0.01 an output token (input nearly free): settling N output tokens spends
# exactly N cents, and its reservation (max_tokens 1) is about one cent.
FILLER_PRICES = '[models."filler"]\ninput_per_mtok = 0.0001\noutput_per_mtok = 10000\n'


@pytest.fixture
def prices_file(tmp_path: Path) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(FILLER_PRICES)
    return path


def fill(gate: BudgetGate, cents: int, *, tenant: str = "acme", now: datetime = NOON) -> None:
    """Spend exactly `cents` in the tenant's current windows through the gate itself."""
    job = make_job(
        f"fill-{tenant}-{cents}-{time.monotonic_ns()}",
        model="filler",
        tenant=tenant,
        messages=[{"role": "user", "content": "x"}],
        params={"max_tokens": 1},
        priority="critical",
    )
    [admission] = admit(gate, [job], now=now)
    assert admission.decision == "run", admission.error
    settle(gate, {job.id: TokenUsage(input_tokens=0, output_tokens=cents)})


def state_of(gate: BudgetGate, scope: str, period: str = "daily") -> BudgetState:
    return next(s for s in gate.snapshot(now=NOON) if s.scope == scope and s.period == period)


def test_reserve_then_settle_moves_money_from_reserved_to_spent(
    make_gate: GateFactory, limit: Limit
) -> None:
    """Given a $1 tenant budget, when a gpt-4o-mini job is admitted, then its worst case is
    reserved; when settled with real usage, then the actual cost is spent, nothing reserved."""
    limit("tenant:acme", "daily", "1.00")
    gate = make_gate()
    job = make_job("job-1", tenant="acme")
    [admission] = admit(gate, [job], now=NOON)
    assert admission.decision == "run"
    assert admission.reservation.provider == "openai"
    assert admission.reservation.max_output_tokens == 200
    priced = PriceBook().price("gpt-4o-mini")
    assert admission.reservation.reserved_usd == priced.cost(
        admission.reservation.input_tokens_estimate, 200
    )
    assert state_of(gate, "tenant:acme").reserved_usd == admission.reservation.reserved_usd

    costs = settle(gate, {"job-1": TokenUsage(input_tokens=40, output_tokens=25)})
    assert costs == {"job-1": priced.cost(40, 25)}
    state = state_of(gate, "tenant:acme")
    assert state.spent_usd == priced.cost(40, 25)
    assert state.reserved_usd == 0
    assert state.window_label == "2026-03-11"


def test_redelivered_job_is_reserved_and_charged_once(make_gate: GateFactory, limit: Limit) -> None:
    """Given a job reserved and settled, when the same id is reserved and settled again (a
    redelivered message), then it is charged once and the second admission says it is done
    (acceptance 2)."""
    limit("global", "daily", "5.00")
    gate = make_gate()
    job = make_job("job-again")
    first = admit(gate, [job], now=NOON)[0]
    second = admit(gate, [job], now=NOON)[0]
    assert second.decision == "run" and not second.already_settled
    assert second.reservation.reserved_usd == first.reservation.reserved_usd
    assert state_of(gate, "global").reserved_usd == first.reservation.reserved_usd  # not doubled

    one = settle(gate, {job.id: TokenUsage(100, 50)})
    two = settle(gate, {job.id: TokenUsage(100, 50)})
    assert one == two
    assert state_of(gate, "global").spent_usd == one[job.id]
    assert state_of(gate, "global").reserved_usd == 0

    again = admit(gate, [job], now=NOON)[0]
    assert again.already_settled
    assert state_of(gate, "global").reserved_usd == 0


def test_same_job_twice_in_one_batch_is_reserved_once(make_gate: GateFactory) -> None:
    gate = make_gate()
    job = make_job("dup")
    first, second = admit(gate, [job, job], now=NOON)
    assert first == second
    assert state_of_unlimited(gate, job.id) == first.reservation.reserved_usd


def state_of_unlimited(gate: BudgetGate, job_id: str) -> Decimal:
    with gate.sessions() as session:
        entry = session.get(LedgerEntryRecord, job_id)
        assert entry is not None
        return entry.reserved_usd


def test_release_returns_the_reservation_and_a_retry_reserves_again(
    make_gate: GateFactory, limit: Limit
) -> None:
    """Given a reserved job whose provider call failed, when released (twice), then nothing
    stays reserved; when the retry is admitted, then it is reserved afresh."""
    limit("global", "daily", "5.00")
    gate = make_gate()
    job = make_job("job-fails")
    reserved = admit(gate, [job], now=NOON)[0].reservation.reserved_usd
    gate.release_many([job.id])
    gate.release_many([job.id])
    assert state_of(gate, "global").reserved_usd == 0
    retry = admit(gate, [job], now=NOON)[0]
    assert retry.decision == "run"
    assert state_of(gate, "global").reserved_usd == reserved


def test_sweeper_releases_reservations_of_dead_workers(
    make_gate: GateFactory, limit: Limit
) -> None:
    """Given a job reserved whose worker died (never settled), when the sweeper runs with a
    timeout it has outlived, then the reservation is released; a fresh one is left alone
    (acceptance 2). If the worker was alive after all, its late settlement is still charged."""
    limit("global", "monthly", "50.00")
    gate = make_gate()
    now = datetime.now(UTC)
    dead, alive = make_job("dead-worker"), make_job("alive-worker")
    admit(gate, [dead], now=now - timedelta(hours=2))
    admit(gate, [alive], now=now)

    assert gate.sweep_stale_reservations(older_than_s=3600) == 1
    assert gate.sweep_stale_reservations(older_than_s=3600) == 0
    with gate.sessions() as session:
        rows = session.execute(select(LedgerEntryRecord.job_id, LedgerEntryRecord.state))
        states = {job_id: state for job_id, state in rows}
    assert states == {"dead-worker": "released", "alive-worker": "reserved"}

    late = settle(gate, {"dead-worker": TokenUsage(10, 10)})
    assert late["dead-worker"] == PriceBook().price("gpt-4o-mini").cost(10, 10)
    then = next(s for s in gate.snapshot(now=now - timedelta(hours=2)) if s.period == "monthly")
    assert then.spent_usd == late["dead-worker"]


def test_refusal_names_scope_window_and_limit(
    make_gate: GateFactory, limit: Limit, prices_file: Path
) -> None:
    """Given a tenant budget of $1.00 with $0.95 spent, when a job needing more than the
    remaining $0.05 arrives, then it is rejected with budget_exceeded naming the scope, the
    window and the limit; nothing is reserved."""
    limit("tenant:acme", "daily", "1.00")
    gate = make_gate(prices_file=prices_file)
    fill(gate, 95)
    big = make_job(
        "too-big", tenant="acme", model="gpt-4o", priority="critical", params={"max_tokens": 9000}
    )
    [admission] = admit(gate, [big], now=NOON)
    assert admission.decision == "reject"
    assert admission.reservation.budget_action == "refuse"
    error = admission.error
    assert isinstance(error, BudgetExceeded)
    assert error.code == "budget_exceeded"
    assert (error.scope, error.period, error.limit_usd) == ("tenant:acme", "daily", Decimal(1))
    assert "tenant:acme" in error.message and "2026-03-11" in error.message
    assert "$1.00" in error.message
    assert state_of(gate, "tenant:acme").reserved_usd == 0


def test_scopes_without_budgets_are_unlimited_but_still_counted(
    make_gate: GateFactory, limit: Limit, prices_file: Path
) -> None:
    """Given no budget for tenant other, when it spends $0.50, then it runs; when a budget is
    set later in the same window, then that spend already counts."""
    gate = make_gate(prices_file=prices_file)
    fill(gate, 50, tenant="other")
    limit("tenant:other", "daily", "0.60")
    state = state_of(gate, "tenant:other")
    assert state.spent_usd == Decimal("0.50")
    assert state.utilisation == Decimal("0.50") / Decimal("0.60")


def test_tightest_scope_decides(make_gate: GateFactory, limit: Limit, prices_file: Path) -> None:
    """Given a generous global budget and a tight agent-type budget, then the agent type's
    utilisation drives the ladder and its limit refuses."""
    limit("global", "monthly", "100")
    limit("agent_type:summarise", "weekly", "0.50")
    gate = make_gate(prices_file=prices_file)
    fill(gate, 49)
    [admission] = admit(gate, [make_job("tight", priority="critical")], now=NOON)
    assert admission.decision == "run"
    assert (
        admission.reservation.budget_action == "high_priority_only"
    )  # 98% of the weekly agent budget
    over = make_job("over", model="gpt-4o", priority="critical", params={"max_tokens": 2000})
    [refused] = admit(gate, [over], now=NOON)
    assert isinstance(refused.error, BudgetExceeded)
    assert (refused.error.scope, refused.error.period) == ("agent_type:summarise", "weekly")


def test_at_80_percent_auto_runs_on_the_cheapest_qualifying_model(
    make_gate: GateFactory, limit: Limit, prices_file: Path
) -> None:
    """Given the weighted choice for min_quality 0.6 below 50%, when the budget is at 80%,
    then the same auto job runs on the cheapest qualifying catalog model, and the admission
    records the action and the reason (acceptance 4, gate side)."""
    limit("tenant:acme", "daily", "1.00")
    gate = make_gate(prices_file=prices_file)
    wanted = {"min_quality": 0.6}
    relaxed = admit(gate, [make_job("auto-1", model="auto", requirements=wanted)], now=NOON)[0]
    assert relaxed.reservation.budget_action is None
    assert relaxed.reservation.model_reason and relaxed.reservation.model_reason.startswith("auto:")

    fill(gate, 80)
    [pressed] = admit(gate, [make_job("auto-2", model="auto", requirements=wanted)], now=NOON)
    qualifying = [m for m in gate.catalog.models if m.quality >= 0.6]
    book = PriceBook()
    cheapest = min(
        qualifying,
        key=lambda m: book.price(m.id).cost(pressed.reservation.input_tokens_estimate, 200),
    )
    assert pressed.decision == "run"
    assert pressed.reservation.model == cheapest.id == "gpt-4o-mini"
    assert relaxed.reservation.model != pressed.reservation.model
    assert pressed.reservation.budget_action == "right_size"
    assert (
        pressed.reservation.model_reason and "budget pressure" in pressed.reservation.model_reason
    )


def test_at_90_percent_low_priority_is_deferred_and_at_95_only_high_runs(
    make_gate: GateFactory, limit: Limit, prices_file: Path
) -> None:
    """Given 90% used, then a low job is deferred (not reserved) and a normal one runs;
    at 95% a normal job is deferred and a high one runs; a job whose deadline is near runs."""
    limit("tenant:acme", "daily", "1.00")
    gate = make_gate(prices_file=prices_file)
    fill(gate, 90)
    low, normal = make_job("low-1", priority="low"), make_job("normal-1", priority="normal")
    deferred, ran = admit(gate, [low, normal], now=NOON)
    assert (
        deferred.decision,
        deferred.reservation.budget_action,
        deferred.reservation.reserved_usd,
    ) == (
        "defer",
        "defer",
        0,
    )
    assert ran.decision == "run"

    gate.release_many([normal.id])
    fill(gate, 5)
    urgent = make_job("urgent", priority="low", deadline=NOON + timedelta(minutes=5))
    later = make_job("later", priority="low", deadline=NOON + timedelta(hours=5))
    normal2, high, urgent_adm, later_adm = admit(
        gate, [make_job("normal-2"), make_job("high-1", priority="high"), urgent, later], now=NOON
    )
    assert normal2.decision == "defer" and normal2.reservation.budget_action == "high_priority_only"
    assert high.decision == "run"
    assert urgent_adm.decision == "run"
    assert later_adm.decision == "defer"
    released = admit(gate, [make_job("normal-3")], now=NOON, defer_allowed=False)[0]
    assert released.decision == "run"


def test_unknown_price_and_unmet_requirements_are_rejected(make_gate: GateFactory) -> None:
    """Given a job for an unpriced model and an auto job nobody can satisfy, then both are
    rejected with their codes and nothing is reserved."""
    gate = make_gate()
    unpriced, impossible = admit(
        gate,
        [
            make_job("unpriced", model="my-private-llm"),
            make_job("impossible", model="auto", requirements={"min_quality": 0.999}),
        ],
        now=NOON,
    )
    assert unpriced.decision == "reject" and unpriced.error is not None
    assert unpriced.error.code == "unknown_model_price"
    assert impossible.decision == "reject" and impossible.error is not None
    assert impossible.error.code == "no_model_meets_requirements"
    with gate.sessions() as session:
        assert session.scalars(select(LedgerEntryRecord.job_id)).all() == []


def test_batch_tier_is_cheaper_and_the_saving_is_recorded(make_gate: GateFactory) -> None:
    """Given a job admitted on the batch tier, then it reserves and settles at the batch price
    and the entry keeps the standard cost, so history can show the saving."""
    gate = make_gate()
    job = make_job("batched", model="gpt-4o")
    # genai-prices lists gpt-4o's batch price from 14 October 2026 on.
    when = datetime(2026, 11, 2, 12, tzinfo=UTC)
    [admission] = admit(gate, [job], now=when, service_tier="batch")
    assert admission.reservation.service_tier == "batch"
    batch = PriceBook().price("gpt-4o", "batch", at=when)
    standard = PriceBook().price("gpt-4o", at=when)
    assert batch.tier_source == "data"
    assert admission.reservation.reserved_usd == batch.cost(
        admission.reservation.input_tokens_estimate, 200
    )
    cost = settle(gate, {job.id: TokenUsage(1000, 100)})[job.id]
    with gate.sessions() as session:
        entry = session.get(LedgerEntryRecord, job.id)
        assert entry is not None
        assert entry.cost_usd == cost == batch.cost(1000, 100)
        assert entry.standard_cost_usd == standard.cost(1000, 100) == 2 * cost


def test_a_tier_price_is_used_only_from_its_start_date() -> None:
    """Given gpt-4o's batch price starts 14 October 2026 in the data, then before that date
    the batch tier is priced at the standard rate (never cheaper than known)."""
    before = datetime(2026, 10, 1, tzinfo=UTC)
    assert PriceBook().price("gpt-4o", "batch", at=before).tier_source == "no_tier_price"


def test_settlement_after_midnight_is_charged_to_the_reservation_window(
    make_gate: GateFactory, limit: Limit
) -> None:
    """Given a job reserved at 23:59 on 11 March, when settled after midnight, then the spend
    lands in 11 March's window and 12 March starts clean (window start is in the key)."""
    limit("global", "daily", "5.00")
    gate = make_gate()
    late = datetime(2026, 3, 11, 23, 59, tzinfo=UTC)
    admit(gate, [make_job("late")], now=late)
    cost = settle(gate, {"late": TokenUsage(100, 100)})["late"]
    day_one = next(s for s in gate.snapshot(now=late) if s.period == "daily")
    day_two = next(s for s in gate.snapshot(now=late + timedelta(minutes=2)) if s.period == "daily")
    assert (day_one.spent_usd, day_one.reserved_usd) == (cost, 0)
    assert (day_two.spent_usd, day_two.reserved_usd, day_two.window_label) == (0, 0, "2026-03-12")


def test_cache_hits_are_recorded_at_zero_with_the_avoided_cost(
    make_gate: GateFactory, limit: Limit
) -> None:
    """Given a cache hit for a job, then the ledger holds a $0 row with the avoided cost and
    the budget is untouched; a hit for a job that had reserved releases that reservation."""
    limit("global", "daily", "5.00")
    gate = make_gate()
    hit = CacheHit("hit-1", "acme", "summarise", "gpt-4o", TokenUsage(1000, 500))
    record_hits(gate, [hit, hit])
    reserved_job = make_job("hit-2")
    admit(gate, [reserved_job], now=datetime.now(UTC))
    record_hits(gate, [CacheHit("hit-2", "default", "summarise", "gpt-4o-mini", TokenUsage(10, 5))])
    with gate.sessions() as session:
        first = session.get(LedgerEntryRecord, "hit-1")
        second = session.get(LedgerEntryRecord, "hit-2")
        assert first is not None and second is not None
        assert (first.state, first.cost_usd) == ("cache_hit", 0)
        assert first.avoided_usd == PriceBook().price("gpt-4o").cost(1000, 500)
        assert first.provider == "openai"
        assert second.state == "cache_hit"
    today = next(s for s in gate.snapshot() if s.period == "daily")
    assert (today.spent_usd, today.reserved_usd) == (0, 0)
    assert settle(gate, {"hit-1": TokenUsage(10, 10)}) == {"hit-1": Decimal(0)}


def test_alerts_fire_once_per_threshold_and_on_refusal(
    make_gate: GateFactory, limit: Limit, prices_file: Path, database_url: str
) -> None:
    """Given a sink, when the budget passes 50% then 80%, then one alert each, never repeated
    by later admissions; a refusal raises the 100% alert."""
    limit("tenant:acme", "daily", "1.00")
    alerts: list[BudgetAlert] = []
    gate = BudgetGate(
        get_sessionmaker(database_url),
        load_settings(database_url=database_url, prices_file=prices_file),
        alert_sink=alerts.append,
    )
    fill(gate, 55)
    admit(gate, [make_job("a1", tenant="acme")], now=NOON)
    assert [(a.scope, a.threshold) for a in alerts] == [("tenant:acme", Decimal("0.50"))]
    fill(gate, 30)
    admit(gate, [make_job("a2", tenant="acme")], now=NOON)
    assert [a.threshold for a in alerts] == [Decimal("0.50"), Decimal("0.80")]
    [refused] = admit(
        gate,
        [make_job("a3", tenant="acme", params={"max_tokens": 100_000}, model="gpt-4o")],
        now=NOON,
    )
    assert refused.decision == "reject"
    assert [a.threshold for a in alerts][-1] == Decimal("1.00")
    assert alerts[-1].action == "refuse"
    count = len(alerts)
    admit(gate, [make_job("a4", tenant="acme", params={"max_tokens": 100_000})], now=NOON)
    assert gate.check_alerts(now=NOON) == []
    assert len(alerts) == count


def test_max_utilisation_is_the_fullest_budget(
    make_gate: GateFactory, limit: Limit, prices_file: Path
) -> None:
    gate = make_gate(prices_file=prices_file)
    assert gate.max_utilisation(now=NOON) == 0
    limit("tenant:acme", "daily", "1.00")
    limit("global", "monthly", "10.00")
    fill(gate, 40)
    assert gate.max_utilisation(now=NOON) == Decimal("0.4")


def test_unreachable_database_raises_database_unavailable(tmp_path: Path) -> None:
    """Given a ledger URL nobody listens on, when jobs are admitted or settled, then
    DatabaseUnavailable (code database_unavailable, the code the CLI shows for the same
    outage) and nothing runs (acceptance 3, gate side)."""
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    gate = BudgetGate(get_sessionmaker(url), load_settings(database_url=url))
    with pytest.raises(DatabaseUnavailable) as caught:
        admit(gate, [make_job("j")], now=NOON)
    assert caught.value.code == "database_unavailable"
    assert "127.0.0.1" not in caught.value.message  # no connection details leak
    with pytest.raises(DatabaseUnavailable):
        settle(gate, {"j": TokenUsage(1, 1)})
