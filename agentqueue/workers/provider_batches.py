"""Beat's side of provider batches: form them, submit each once, poll with backoff, settle.

Every batch row is written before its remote call and every step is guarded by the row's
state, so a beat task killed at any point leaves work that the next run finishes: a batch
`recorded` is submitted; one `submitting` whose holder died is first looked up remotely (by
our batch id in its metadata) and only then submitted; one `submitted` is polled. Results
settle through the same ledger path as every job (`BudgetGate.complete`), at the batch price.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from agentqueue.constants import BATCH_LIMITS
from agentqueue.jobs import utcnow
from agentqueue.persistence import batch_repository as repo
from agentqueue.providers.base import ProviderError
from agentqueue.providers.batch_base import (
    BatchAPI,
    BatchItem,
    request_from_json,
)
from agentqueue.workers.batch_settlement import BatchSettlement, Publish
from agentqueue.workers.context import WorkerContext

log = logging.getLogger(__name__)


class ProviderBatches:
    """Runs inside the beat tasks `submit_provider_batches` and `poll_provider_batches`."""

    def __init__(self, context: WorkerContext, api: BatchAPI, publish: Publish) -> None:
        self.context = context
        self.settings = context.settings
        self.api = api
        self.settlement = BatchSettlement(context, api.name, publish)

    # Submit ---------------------------------------------------------------------------------

    def submit_due(self) -> int:
        """Form batches of waiting jobs, then submit every batch not yet submitted."""
        now = utcnow()
        try:
            with self.context.sessions.begin() as session:
                repo.form_batches(session, now=now, limits=self._limits())
        except repo.BatchRace:
            log.info("another beat task is forming provider batches; skipped this run")
        with self.context.sessions.begin() as session:
            held = repo.take(
                session,
                [repo.RECORDED, repo.SUBMITTING],
                now=now,
                hold_s=self.settings.batch_hold_s,
                polling=False,
            )
        submitted = 0
        for batch in held:
            submitted += self._submit(batch)
        return submitted

    def _limits(self) -> dict[str, tuple[int, int]]:
        return {
            name: (
                min(most, self.settings.batch_max_requests),
                min(size, self.settings.batch_max_bytes),
            )
            for name, (most, size) in BATCH_LIMITS.items()
        }

    def _submit(self, batch: repo.BatchRow) -> int:
        now = utcnow()
        if batch.state == repo.RECORDED:
            # Said before the call: from here on, the batch may exist remotely.
            with self.context.sessions.begin() as session:
                repo.set_state(
                    session, batch.id, now=now, from_state=repo.RECORDED, state=repo.SUBMITTING
                )
        _, items = self._requests(batch.id)
        try:
            remote_id = self.api.find(batch.id) if batch.state == repo.SUBMITTING else None
            if remote_id is None:
                remote_id = self.api.submit(batch.id, items)
        except ProviderError as error:
            log.warning("provider batch %s not submitted yet: %s", batch.id, error.message)
            with self.context.sessions.begin() as session:
                repo.set_state(
                    session, batch.id, now=now, from_state=repo.SUBMITTING, held_until=None
                )
            return 0
        with self.context.sessions.begin() as session:
            repo.set_state(
                session,
                batch.id,
                now=utcnow(),
                from_state=repo.SUBMITTING,
                state=repo.SUBMITTED,
                remote_id=remote_id,
                submitted_at=utcnow(),
                next_poll_at=utcnow() + timedelta(seconds=self.settings.batch_poll_s),
                held_until=None,
            )
        log.info("submitted provider batch %s (%s, %d jobs)", batch.id, remote_id, len(items))
        return len(items)

    def _requests(self, batch_id: str) -> tuple[list[str], list[BatchItem]]:
        """The batch's job ids and their requests, in the same order, from one read."""
        with self.context.sessions() as session:
            rows = repo.requests_of(session, batch_id)
        # Index-based ids satisfy every provider's custom_id rules whatever the job ids look like.
        items = [BatchItem(f"r{i}", request_from_json(text)) for i, (_, text) in enumerate(rows)]
        return [job_id for job_id, _ in rows], items

    # Poll -----------------------------------------------------------------------------------

    def poll_due(self) -> int:
        """Poll every submitted batch that is due; settle those that ended. Returns jobs settled."""
        now = utcnow()
        with self.context.sessions.begin() as session:
            held = repo.take(
                session,
                [repo.SUBMITTED, repo.CANCELLING],
                now=now,
                hold_s=self.settings.batch_hold_s,
                polling=True,
            )
        done = 0
        for batch in held:
            done += self._poll(batch)
        return done

    def _poll(self, batch: repo.BatchRow) -> int:
        assert batch.remote_id is not None
        now = utcnow()
        job_ids, items = self._requests(batch.id)
        state = batch.state
        try:
            margin = timedelta(seconds=self.settings.batch_deadline_margin_s)
            if (
                state == repo.SUBMITTED
                and batch.deadline is not None
                and now >= batch.deadline - margin
            ):
                # A member's deadline nears: stop the batch; what it did not finish runs now.
                self.api.cancel(batch.remote_id)
                with self.context.sessions.begin() as session:
                    repo.set_state(
                        session,
                        batch.id,
                        now=now,
                        from_state=repo.SUBMITTED,
                        state=repo.CANCELLING,
                        cancel_reason="deadline",
                    )
                state = repo.CANCELLING
                log.info("cancelled provider batch %s: a member's deadline nears", batch.id)
            poll = self.api.poll(batch.remote_id, items)
        except ProviderError as error:
            log.warning("provider batch %s not polled: %s", batch.id, error.message)
            self._poll_later(batch, state)
            return 0
        if not poll.ended:
            self._poll_later(batch, state, remote_status=poll.status)
            return 0
        return self.settlement.settle(batch, state, job_ids, items, poll)

    def _poll_later(
        self, batch: repo.BatchRow, state: str, remote_status: str | None = None
    ) -> None:
        # Backoff: a long batch is polled less and less often, up to AGENTQUEUE_BATCH_POLL_MAX_S.
        wait = min(
            self.settings.batch_poll_s * 2 ** min(batch.polls, 16), self.settings.batch_poll_max_s
        )
        next_poll = utcnow() + timedelta(seconds=wait)
        if batch.deadline is not None and state == repo.SUBMITTED:
            # Never sleep past the moment a member's deadline makes us cancel.
            cancel_at = batch.deadline - timedelta(seconds=self.settings.batch_deadline_margin_s)
            next_poll = min(next_poll, max(cancel_at, utcnow()))
        values: dict[str, object] = {
            "held_until": None,
            "polls": batch.polls + 1,
            "next_poll_at": next_poll,
        }
        if remote_status is not None:
            values["remote_status"] = remote_status
        with self.context.sessions.begin() as session:
            repo.set_state(session, batch.id, now=utcnow(), from_state=state, **values)

    # Settle ---------------------------------------------------------------------------------
