"""One engine and session factory per process, created lazily (so after any fork)."""

from __future__ import annotations

import os
import select
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000

_lock = threading.Lock()
_engines: dict[tuple[int, str], Engine] = {}


def normalize_url(url: str) -> str:
    """Pick our drivers: psycopg 3 for PostgreSQL."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_sqlite(url: str) -> bool:
    return make_url(normalize_url(url)).get_backend_name() == "sqlite"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE means what it says.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers serialise at BEGIN instead of failing with "database is locked" on upgrade.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def closed_by_server(dbapi_connection: Any) -> bool:
    """Whether an idle PostgreSQL connection has been closed (or is being closed) by the server.

    An idle connection receives nothing unless the server ends it: a restart, a terminated
    backend or an idle timeout sends an error and closes the socket, which makes it readable.
    So a readable (or already broken) idle connection is not used; the check costs a system
    call, where a ping would cost a round trip per transaction.
    """
    if dbapi_connection.closed or dbapi_connection.broken:
        return True
    poller = select.poll()  # not select(): it refuses descriptors above 1023
    try:
        poller.register(dbapi_connection.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _replace_closed_connections(engine: Engine) -> None:
    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if closed_by_server(dbapi_connection):
            # The pool drops it and connects afresh (the caller never sees this one).
            raise DisconnectionError("the server closed this pooled connection")


def build_engine(url: str) -> Engine:
    """A new engine for `url`, with SQLite set up for WAL, busy timeout and immediate writes."""
    url = normalize_url(url)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20)
    _replace_closed_connections(engine)
    return engine


def get_engine(url: str) -> Engine:
    """The engine of this process for `url` (a forked child builds its own)."""
    key = (os.getpid(), normalize_url(url))
    engine = _engines.get(key)
    if engine is None:
        with _lock:
            engine = _engines.get(key)
            if engine is None:
                engine = build_engine(url)
                _engines[key] = engine
    return engine


def get_sessionmaker(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


def dispose_all() -> None:
    """Close every pooled connection of this process (tests, shutdown)."""
    with _lock:
        for (pid, _), engine in list(_engines.items()):
            if pid == os.getpid():
                engine.dispose()
        _engines.clear()
