"""Provider answers written down the moment they arrive, before anything else happens.

The answer of a paid call goes to Redis at once (`PendingAnswers`; concurrent answers share one
pipelined round trip), so a worker that dies before settling leaves it behind: the job's next
attempt settles from it instead of paying for the call again. Redis, not SQL, so that a group
of jobs pays the database only its two transactions (start and completion). When Redis cannot
take an answer, it goes to the SQL journal (`provider_answers`) instead. After the settling
transaction has committed, the answers are dropped from Redis; that transaction deletes the SQL
rows it settles. A worker that dies between the two leaves answers of ended jobs in Redis:
every worker's lease sweep drops those (`drop_finished`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence

import redis
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.cache.entry import CacheEntry, EntryDecodeError
from agentqueue.jobs import JobStatus, utcnow
from agentqueue.persistence import answers_repository, jobs_repository
from agentqueue.workers.coalescer import Coalescer
from agentqueue.workers.kept_answer import KeptAnswer
from agentqueue.workers.pending_answers import PendingAnswers

log = logging.getLogger(__name__)


class AnswerJournal:
    def __init__(self, sessions: sessionmaker[Session], store: PendingAnswers) -> None:
        self.sessions = sessions
        self.store = store
        self._writes: Coalescer[tuple[str, KeptAnswer], None] = Coalescer(self._write_many)
        self._lock = threading.Lock()
        self._in_sql: set[str] = set()  # answers this process had to write to SQL

    def record(
        self,
        job_id: str,
        entry: CacheEntry,
        *,
        possibly_repeated: int = 0,
        carried_over: bool = False,
    ) -> None:
        """Keep one paid answer, with the job's calls of unknown outcome (see `KeptAnswer`);
        never raises (the job goes on with its answer in hand)."""
        try:
            kept = KeptAnswer(entry, possibly_repeated, carried_over)
            self._writes.submit((job_id, kept))
        except Exception:  # a bug, not an outage: the job still settles with its answer
            log.exception("answer of job %s could not be journaled", job_id)

    def _write_many(self, answers: Sequence[tuple[str, KeptAnswer]]) -> list[None]:
        by_job = dict(answers)
        try:
            self.store.keep(by_job)
        except redis.RedisError as error:
            log.warning("%d answer(s) kept in SQL (%s)", len(by_job), type(error).__name__)
            try:
                with self.sessions.begin() as session:
                    answers_repository.write(
                        session,
                        {job_id: kept.to_json().decode() for job_id, kept in by_job.items()},
                        now=utcnow(),
                    )
            except (OperationalError, DBAPIError) as sql_error:
                log.error(
                    "%d answer(s) could not be journaled (%s); a crash before settling would "
                    "charge them as possibly repeated",
                    len(by_job),
                    type(sql_error).__name__,
                )
            else:
                with self._lock:
                    self._in_sql.update(by_job)
        return [None] * len(answers)

    def take(self, job_ids: Sequence[str]) -> dict[str, KeptAnswer]:
        """Answers kept for these jobs by an earlier attempt (they stay until settled)."""
        found: dict[str, KeptAnswer] = {}
        try:
            found.update(self.store.take(job_ids))
        except redis.RedisError as error:
            log.warning("could not read answers kept in Redis: %s", type(error).__name__)
        rest = [job_id for job_id in job_ids if job_id not in found]
        if not rest:
            return found
        try:
            with self.sessions() as session:
                stored: Mapping[str, str] = answers_repository.read(session, rest)
        except (OperationalError, DBAPIError):
            stored = {}
        for job_id, text in stored.items():
            try:
                found[job_id] = KeptAnswer.from_json(text.encode())
            except EntryDecodeError:
                log.error("journaled answer of job %s cannot be read; ignored", job_id)
        return found

    def carry(self, counts: Mapping[str, int]) -> None:
        """Keep, for each job's next attempt, how many calls of unknown outcome it leaves
        uncharged at its standing reservation (0: none, an older count is dropped). Never
        raises: without the count, the next attempt charges the one call its standing
        reservation tells of."""
        try:
            self.store.keep_carried(counts)
        except redis.RedisError as error:
            log.warning(
                "could not keep the calls of unknown outcome of %d job(s) (%s); a retry "
                "charges one call each",
                len(counts),
                type(error).__name__,
            )

    def carried(self, job_ids: Sequence[str]) -> dict[str, int]:
        """The counts an earlier attempt kept (see `carry`); none when Redis cannot say."""
        try:
            return self.store.take_carried(job_ids)
        except redis.RedisError as error:
            log.warning("could not read carried calls: %s", type(error).__name__)
            return {}

    def sql_rows(self, job_ids: Sequence[str], retried: Sequence[str]) -> list[str]:
        """Of these settling jobs, those that may have an answer in the SQL journal: written
        there by this process, or by an earlier attempt (`retried`) anywhere."""
        again = set(retried)
        with self._lock:
            return [job_id for job_id in job_ids if job_id in self._in_sql or job_id in again]

    def drop_finished(self, *, older_than_s: float, limit: int = 500) -> list[str]:
        """Drop the Redis answers of jobs that are over: a worker that died between its
        settlement and `forget` left them (a redelivered message of such a job drops them too,
        but that message may come back only after the visibility timeout). Answers kept less
        than `older_than_s` ago are left to their worker; returns the jobs dropped.

        Raises:
            redis.RedisError, OperationalError, DBAPIError: a store cannot be reached; the
                next sweep tries again.
        """
        kept = self.store.kept_before(time.time() - older_than_s, limit=limit)
        if not kept:
            return []
        with self.sessions() as session:
            statuses = jobs_repository.statuses(session, kept)
        over = [
            job_id
            for job_id in kept
            if job_id not in statuses or JobStatus(statuses[job_id]).is_final
        ]
        self.forget(over)
        ended = set(over)
        self.store.still_needed([job_id for job_id in kept if job_id not in ended])
        if over:
            log.info("dropped %d answer(s) left kept after their jobs ended", len(over))
        return over

    def forget(self, job_ids: Sequence[str], *, pipe: redis.client.Pipeline | None = None) -> None:
        """Drop settled jobs' answers from Redis (their SQL rows went with the settlement).
        With `pipe`, the deletes are only queued there, and its owner executes it."""
        if not job_ids:
            return
        with self._lock:
            self._in_sql.difference_update(job_ids)
        if pipe is not None:
            self.store.forget(job_ids, pipe=pipe)
            return
        try:
            self.store.forget(job_ids)
        except redis.RedisError as error:  # they expire with their TTL
            log.warning("could not drop settled answers: %s", type(error).__name__)
