"""Pooled PostgreSQL connections: one the server closed (a restart, a terminated backend) is
replaced when it is checked out, so no caller sees its error; a live one is reused."""

from __future__ import annotations

import os
import time

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from agentqueue.persistence.engine import get_engine
from tests.support.services import POSTGRES_ADMIN_URL

BACKENDS = text("SELECT pid FROM pg_stat_activity WHERE datname = :name")
TERMINATE = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :name"
)


def end_every_session(database_url: str) -> int:
    """Terminate every backend of this database, as a server restart would, and wait until
    they are gone; how many there were."""
    name = make_url(database_url).database
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            ended = int(connection.execute(TERMINATE, {"name": name}).scalar_one())
            deadline = time.monotonic() + 10
            while connection.execute(BACKENDS, {"name": name}).first() is not None:
                assert time.monotonic() < deadline, "the backends did not end"
                time.sleep(0.02)
    finally:
        admin.dispose()
    return ended


def backend_pids(database_url: str, count: int) -> set[int]:
    """The backends of `count` connections checked out at once (then back in the pool)."""
    engine = get_engine(database_url)
    held = [engine.connect() for _ in range(count)]
    try:
        return {int(c.execute(text("SELECT pg_backend_pid()")).scalar_one()) for c in held}
    finally:
        for connection in held:
            connection.close()


def test_pooled_connections_the_server_closed_are_replaced_without_an_error(
    postgres_url: str,
) -> None:
    """Given three idle pooled connections, when the server ends their sessions, then the next
    three checkouts at once each run on a new backend and no error reaches the caller."""
    before = backend_pids(postgres_url, 3)
    assert len(before) == 3
    assert end_every_session(postgres_url) >= 3

    after = backend_pids(postgres_url, 3)

    assert len(after) == 3 and not after & before


def test_a_live_pooled_connection_is_reused(postgres_url: str) -> None:
    """Given a connection back in the pool after a transaction, the next checkout gets the same
    backend: the check at checkout does not drop live connections."""
    engine = get_engine(postgres_url)
    with engine.begin() as connection:
        first = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with engine.begin() as connection:
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() == first


def test_a_connection_on_a_descriptor_above_1023_is_used(postgres_url: str) -> None:
    """Given a process with over a thousand open files (a busy application), when a pooled
    connection gets a descriptor above 1023, then the check at checkout still works on it
    (select() would refuse such a descriptor and every checkout would fail)."""
    padding = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        engine = get_engine(postgres_url)
        engine.dispose()  # connect afresh, above the padding
        for _ in range(2):
            with engine.connect() as connection:
                assert connection.connection.dbapi_connection is not None
                assert connection.connection.dbapi_connection.fileno() > 1023
                assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        for descriptor in padding:
            os.close(descriptor)
