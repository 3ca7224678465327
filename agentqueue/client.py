"""`AgentQueue`: how applications submit jobs, wait for results, and cancel."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import redis
from celery import Celery
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.budget.catalog import load_catalog
from agentqueue.budget.model_names import KnownModels
from agentqueue.budget.price_overrides import load_price_overrides
from agentqueue.budget.pricing import PriceBook
from agentqueue.constants import MAX_JOB_ID_LENGTH
from agentqueue.errors import AgentQueueError, DatabaseUnavailable
from agentqueue.job_input import safe_field
from agentqueue.jobs import (
    AgentJob,
    ErrorInfo,
    JobResult,
    JobStatus,
    JobValidationError,
    parse_job,
    utcnow,
)
from agentqueue.messaging import Dispatcher, JobRef, PublishFailed
from agentqueue.persistence import jobs_repository
from agentqueue.persistence.engine import get_sessionmaker
from agentqueue.persistence.migrate import ensure_embedded_schema
from agentqueue.results import ResultStore
from agentqueue.scheduler.deferral_policy import release_time_for
from agentqueue.scheduler.windows import OffPeakSchedule
from agentqueue.settings import Settings, get_settings


class BrokerUnavailable(AgentQueueError):
    """Redis took some or none of a submission's messages; `enqueued` lists the job ids
    that went out (recorded, they will run); the others were not recorded."""

    code = "broker_unavailable"

    def __init__(self, message: str, *, enqueued: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.enqueued = list(enqueued)


class JobNotFound(AgentQueueError):
    code = "job_not_found"


class JobWaitTimeout(AgentQueueError, TimeoutError):
    code = "wait_timeout"


class DatabaseError(AgentQueueError):
    code = "database_error"


_JOB_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_JOB_ID_LENGTH - 1}}}")
_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def checked_job_id(job_id: object) -> str:
    """A job id as `status`/`cancel`/`wait` accept it (never NUL, surrogates or other junk)."""
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        shown = safe_field(repr(job_id))[:80]
        raise JobValidationError(
            f"{shown} is not a job id (letters, digits and . _ : -, at most "
            f"{MAX_JOB_ID_LENGTH} characters)",
            code="invalid_job_id",
            field="id",
        )
    return job_id


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """SQL driver errors as our coded errors (the driver's text can carry the URL)."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise DatabaseUnavailable(
            f"the database cannot be reached ({type(exc.orig).__name__}); check "
            "AGENTQUEUE_DATABASE_URL and that it is up; nothing was changed"
        ) from None
    except DBAPIError as exc:
        raise DatabaseError(
            f"the database refused the operation ({type(exc.orig).__name__}); nothing was changed"
        ) from None


JobInput = AgentJob | dict[str, Any] | str


class JobHandle:
    """A submitted job: wait for it with `get`, look at it with `status`."""

    def __init__(self, queue: AgentQueue, job_id: str) -> None:
        self.queue = queue
        self.id = job_id

    def get(self, timeout: float | None = None) -> JobResult:
        """Block until the job is final and return its result.

        Raises:
            JobWaitTimeout: if it is not final within `timeout` seconds.
        """
        return self.queue.wait([self.id], timeout=timeout)[self.id]

    def status(self) -> JobResult:
        return self.queue.status(self.id)

    def cancel(self) -> bool:
        return self.queue.cancel(self.id)

    def __repr__(self) -> str:
        return f"JobHandle({self.id!r})"


class AgentQueue:
    """Client of an agentqueue deployment (the Redis broker and the SQL record).

    With `tenant` (default: `AGENTQUEUE_TENANT`), the client submits, reads, waits for and
    cancels only that tenant's jobs; another tenant's job id answers like an unknown id.
    Without it, the client is an operator's and sees every job.
    """

    def __init__(
        self, settings: Settings, *, celery_app: Celery | None = None, tenant: str | None = None
    ) -> None:
        self.settings = settings
        self.tenant = tenant if tenant is not None else settings.tenant
        if self.tenant is not None and not _TENANT.fullmatch(self.tenant):
            raise JobValidationError(
                f"tenant {safe_field(repr(self.tenant))[:80]} is not a tenant name "
                "(lowercase letters, digits, _ and -)",
                code="invalid_tenant",
                field="tenant",
            )
        if celery_app is None:
            from agentqueue.workers.app_factory import create_app

            celery_app = create_app(settings)
        self.celery = celery_app
        url = settings.resolved_database_url
        ensure_embedded_schema(url, auto_migrate=settings.auto_migrate)
        self.sessions: sessionmaker[Session] = get_sessionmaker(url)
        self.redis = redis.Redis.from_url(settings.redis_url)
        self.results = ResultStore(self.redis, ttl_s=settings.result_ttl_s)
        self.dispatcher = Dispatcher(self.celery, packed_batch_size=settings.packed_batch_size)
        self.offpeak = OffPeakSchedule.from_settings(settings)
        self._models: KnownModels | None = None

    @classmethod
    def from_env(cls, *, tenant: str | None = None) -> AgentQueue:
        return cls(get_settings(), tenant=tenant)

    def close(self) -> None:
        self.redis.close()

    def __enter__(self) -> AgentQueue:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # Submitting -------------------------------------------------------------------------

    def submit(self, job: JobInput) -> JobHandle:
        """Validate, record and enqueue one job. The same id twice runs once.

        Raises:
            JobValidationError: the job is malformed, or names a model that is neither priced
                nor in the catalog (`unknown_model`, with a did-you-mean suggestion); nothing
                is recorded or enqueued.
            BrokerUnavailable: Redis refused the message (nothing is left recorded).
        """
        return self.submit_many([job])[0]

    def submit_many(
        self, jobs: Iterable[JobInput], *, packed: bool | None = None
    ) -> list[JobHandle]:
        """Validate all, record all in one transaction, then publish on one connection.

        Bulk work (more than one job, unless `packed=False`) goes as packed batch tasks of
        one `(agent_type, model)` each. A `low` job outside the off-peak windows is stored
        as deferred and released by beat. A malformed job refuses the whole call before
        anything is recorded.

        Raises:
            JobValidationError: a job is malformed (nothing is recorded or enqueued).
            BrokerUnavailable: Redis failed part-way; the jobs whose messages went out stay
                recorded (`error.enqueued`), the others are not: submit the same jobs again,
                no job runs twice.
        """
        parsed = [self._own(parse_job(job, max_bytes=self.settings.max_job_bytes)) for job in jobs]
        known = self._known_models()
        for job in parsed:
            known.check(job.named_models)
        ids = [job.id for job in parsed]
        if len(set(ids)) != len(ids):
            raise JobValidationError(
                "the same job id appears twice in one submission", code="duplicate_job_id"
            )
        now = utcnow()
        hold = self._deferrals(parsed, now)
        with database_errors(), self.sessions.begin() as session:
            inserted = jobs_repository.insert_new(
                session, parsed, status=JobStatus.QUEUED, now=now, release_after=hold
            )
            existing = [job for job in parsed if job.id not in inserted]
            if existing:
                self._check_same_payload(session, existing)
        fresh = [job for job in parsed if job.id in inserted and job.id not in hold]
        self._publish(fresh, packed=len(parsed) > 1 if packed is None else packed)
        return [JobHandle(self, job_id) for job_id in ids]

    def _own(self, job: AgentJob) -> AgentJob:
        """A scoped client's job belongs to its tenant (filled in when the job names none)."""
        if self.tenant is None or job.tenant == self.tenant:
            return job
        if "tenant" not in job.model_fields_set:
            return job.model_copy(update={"tenant": self.tenant})
        raise JobValidationError(
            f"this client is scoped to tenant {self.tenant!r}; "
            f"it cannot submit jobs for tenant {job.tenant!r}",
            code="tenant_mismatch",
            field="tenant",
        )

    def _visible(self, record: jobs_repository.JobRecord | None) -> bool:
        return record is not None and (self.tenant is None or record.tenant == self.tenant)

    def _known_models(self) -> KnownModels:
        """Built on first submit: loading prices and the catalog is not free."""
        if self._models is None:
            self._models = KnownModels(
                load_catalog(self.settings.catalog_file),
                PriceBook(load_price_overrides(self.settings.prices_file)),
            )
        return self._models

    def _deferrals(self, jobs: Sequence[AgentJob], now: datetime) -> dict[str, datetime]:
        hold: dict[str, datetime] = {}
        for job in jobs:
            when = release_time_for(
                job.priority,
                job.deadline,
                self.settings.expected_run_s_default,
                now,
                self.offpeak.windows,
                self.offpeak.tz,
                budget_says_defer=False,
            )
            if when is not None:
                hold[job.id] = when
        return hold

    def _check_same_payload(self, session: Session, jobs: Sequence[AgentJob]) -> None:
        stored = jobs_repository.payloads(session, [job.id for job in jobs])
        for job in jobs:
            if AgentJob.model_validate_json(stored[job.id]) != job:
                raise JobValidationError(
                    f"job id {job.id!r} was already used for a different job; "
                    "use a new id for new work",
                    code="job_id_conflict",
                    field="id",
                )

    def _publish(self, jobs: Sequence[AgentJob], *, packed: bool) -> None:
        if not jobs:
            return
        sendable = [JobRef(job.id, job.agent_type, job.model, job.priority.value) for job in jobs]
        try:
            self.dispatcher.send(sendable, packed=packed)
        except PublishFailed as failure:
            # Jobs whose message went out keep their rows (a worker will run them, and
            # resubmitting their ids adds nothing). The others are forgotten, so resubmitting
            # them enqueues them; should the failed message have gone out after all, it finds
            # no row, or the row of the resubmission, which only one message can claim.
            unsent = [job.job_id for job in failure.unsent]
            with database_errors(), self.sessions.begin() as session:
                jobs_repository.delete_jobs(session, unsent)
            enqueued = [job.job_id for job in failure.sent]
            raise BrokerUnavailable(
                f"{len(unsent)} of {len(jobs)} job(s) could not be enqueued "
                f"({type(failure.cause).__name__}) and were not recorded; submit the same jobs "
                "again when Redis is reachable"
                + (
                    f" ({len(enqueued)} already enqueued keep their records and run once)"
                    if enqueued
                    else ""
                ),
                enqueued=enqueued,
            ) from None

    # Reading ----------------------------------------------------------------------------

    def status(self, job_id: str) -> JobResult:
        """The current record of a job.

        Raises:
            JobNotFound: no job has this id.
        """
        job_id = checked_job_id(job_id)
        with database_errors(), self.sessions() as session:
            record = jobs_repository.get_record(session, job_id)
            if record is None or not self._visible(record):
                raise JobNotFound(f"no job with id {job_id!r}")
            return jobs_repository.record_to_result(record)

    def statuses(self, job_ids: Sequence[str]) -> dict[str, JobResult]:
        """Current records of many jobs in one query per 500 ids (unknown ids are left out)."""
        found: dict[str, JobResult] = {}
        job_ids = [checked_job_id(job_id) for job_id in job_ids]
        with database_errors(), self.sessions() as session:
            for start in range(0, len(job_ids), 500):
                for record in jobs_repository.get_records(session, job_ids[start : start + 500]):
                    if self._visible(record):
                        found[record.id] = jobs_repository.record_to_result(record)
        return found

    def wait(
        self,
        job_ids: Sequence[str],
        *,
        timeout: float | None = None,
        on_result: Callable[[JobResult], None] | None = None,
        sql_check_interval_s: float = 1.0,
    ) -> dict[str, JobResult]:
        """Wait until every job is final; results come from Redis, SQL is the fallback.

        The worker pushes a token when it publishes a result, so this returns within one Redis
        round trip of the final record; SQL is read every `sql_check_interval_s` in case Redis
        lost a result.

        Raises:
            JobWaitTimeout: some job is not final within `timeout` seconds.
            JobNotFound: an id is unknown.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = list(dict.fromkeys(checked_job_id(job_id) for job_id in job_ids))
        if self.tenant is not None:
            # Results in Redis carry no owner check: a scoped client first proves, in SQL,
            # that every id is its own (an id of another tenant answers like an unknown one).
            owned = self.statuses(pending)
            for job_id in pending:
                if job_id not in owned:
                    raise JobNotFound(f"no job with id {job_id!r}")
        done: dict[str, JobResult] = {}
        next_sql_check = time.monotonic() + sql_check_interval_s
        while pending:
            found: dict[str, JobResult] = {}
            for start in range(0, len(pending), 500):
                found.update(self.results.fetch(pending[start : start + 500]))
            if time.monotonic() >= next_sql_check:
                # The database may be down for now; Redis can still bring results meanwhile.
                with contextlib.suppress(OperationalError, DBAPIError):
                    found.update(self._final_from_sql([i for i in pending if i not in found]))
                next_sql_check = time.monotonic() + sql_check_interval_s
            for job_id, result in found.items():
                if result.is_final:
                    done[job_id] = result
                    if on_result is not None:
                        on_result(result)
            pending = [i for i in pending if i not in done]
            if not pending:
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise JobWaitTimeout(
                    f"{len(pending)} job(s) not finished within {timeout} s "
                    f"(first: {pending[0]}); they keep running, wait again or check status"
                )
            block = next_sql_check - now
            if deadline is not None:
                block = min(block, deadline - now)
            self.results.wait_ready(pending, block)
        return done

    def _final_from_sql(self, job_ids: Sequence[str]) -> dict[str, JobResult]:
        current = self.statuses(job_ids)
        for job_id in job_ids:
            if job_id not in current:
                raise JobNotFound(f"no job with id {job_id!r}")
        return {job_id: result for job_id, result in current.items() if result.is_final}

    # Cancelling -------------------------------------------------------------------------

    def cancel(self, job_id: str) -> bool:
        """Cancel a job that has not started; True if it was cancelled by this call."""
        job_id = checked_job_id(job_id)
        now = utcnow()
        with database_errors(), self.sessions.begin() as session:
            record = jobs_repository.get_record(session, job_id)
            if record is None or not self._visible(record):
                raise JobNotFound(f"no job with id {job_id!r}")
            current = jobs_repository.record_to_result(record)
            result = current.model_copy(
                update={
                    "status": JobStatus.CANCELLED,
                    "finished_at": now,
                    "error": ErrorInfo(code="cancelled", message="cancelled before it ran"),
                }
            )
            moved = jobs_repository.set_status(
                session,
                [job_id],
                status=JobStatus.CANCELLED,
                from_statuses=jobs_repository.CANCELLABLE,
                result=result,
            )
        if moved:
            self.results.publish([result])
        return bool(moved)
