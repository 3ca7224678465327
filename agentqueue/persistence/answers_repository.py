"""Reads and writes of the provider answer journal. Callers own the session."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from agentqueue.persistence.answer_table import ProviderAnswerRecord

answers: Table = ProviderAnswerRecord.__table__  # type: ignore[assignment]


def write(session: Session, by_job: Mapping[str, str], *, now: datetime) -> None:
    """Keep each job's answer (JSON); a second answer for the same job replaces the first."""
    if not by_job:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(answers)
    statement = statement.on_conflict_do_update(
        index_elements=["job_id"],
        set_={"answer": statement.excluded.answer, "answered_at": statement.excluded.answered_at},
    )
    rows = [{"job_id": j, "answer": a, "answered_at": now} for j, a in by_job.items()]
    session.execute(statement, rows)


def read(session: Session, job_ids: Sequence[str]) -> dict[str, str]:
    if not job_ids:
        return {}
    rows = session.execute(
        select(answers.c.job_id, answers.c.answer).where(answers.c.job_id.in_(list(job_ids)))
    )
    return {row.job_id: row.answer for row in rows}


def forget(session: Session, job_ids: Sequence[str]) -> None:
    if job_ids:
        session.execute(delete(answers).where(answers.c.job_id.in_(list(job_ids))))
