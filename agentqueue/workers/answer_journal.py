"""Provider answers written down the moment they arrive, before anything else happens.

The answer of a paid call goes to the SQL journal at once (concurrent answers share one
transaction), so a worker that dies before settling leaves it behind: the job's next attempt
settles from it instead of paying for the call again. When the database cannot take it, the
answer goes to Redis instead (`PendingAnswers`), as before. The settling transaction deletes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from agentqueue.cache.entry import CacheEntry, EntryDecodeError
from agentqueue.jobs import utcnow
from agentqueue.persistence import answers_repository
from agentqueue.workers.coalescer import Coalescer
from agentqueue.workers.pending_answers import PendingAnswers

log = logging.getLogger(__name__)


class AnswerJournal:
    def __init__(self, sessions: sessionmaker[Session], fallback: PendingAnswers) -> None:
        self.sessions = sessions
        self.fallback = fallback
        self._writes: Coalescer[tuple[str, CacheEntry], None] = Coalescer(self._write_many)

    def record(self, job_id: str, entry: CacheEntry) -> None:
        """Keep one paid answer; never raises (the job goes on with its answer in hand)."""
        try:
            self._writes.submit((job_id, entry))
        except (OperationalError, DBAPIError) as error:
            log.warning("answer of job %s kept in Redis (%s)", job_id, type(error).__name__)
            try:
                self.fallback.keep({job_id: entry})
            except Exception as redis_error:
                log.error(
                    "answer of job %s could not be journaled (%s); a crash before settling "
                    "would charge it as possibly repeated",
                    job_id,
                    type(redis_error).__name__,
                )

    def _write_many(self, answers: Sequence[tuple[str, CacheEntry]]) -> list[None]:
        with self.sessions.begin() as session:
            answers_repository.write(
                session,
                {job_id: entry.to_json().decode() for job_id, entry in answers},
                now=utcnow(),
            )
        return [None] * len(answers)

    def take(self, job_ids: Sequence[str]) -> dict[str, CacheEntry]:
        """Answers kept for these jobs by an earlier attempt (they stay until settled)."""
        found: dict[str, CacheEntry] = {}
        try:
            with self.sessions() as session:
                stored: Mapping[str, str] = answers_repository.read(session, job_ids)
        except (OperationalError, DBAPIError):
            stored = {}
        for job_id, text in stored.items():
            try:
                found[job_id] = CacheEntry.from_json(text.encode())
            except EntryDecodeError:
                log.error("journaled answer of job %s cannot be read; ignored", job_id)
        rest = [job_id for job_id in job_ids if job_id not in found]
        if rest:
            try:
                found.update(self.fallback.take(rest))
            except Exception as error:
                log.warning("could not read answers kept in Redis: %s", type(error).__name__)
        return found

    def forget_in(self, session: Session, job_ids: Sequence[str]) -> None:
        """Drop settled jobs' answers, inside the transaction that settles them."""
        answers_repository.forget(session, job_ids)
