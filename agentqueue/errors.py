"""The base error users can hit: a stable code plus a sentence that says what to do."""

from __future__ import annotations


class AgentQueueError(Exception):
    """An error with a stable machine-readable `code` and a human `message`."""

    code: str = "agentqueue_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class DatabaseUnavailable(AgentQueueError):
    """The SQL database (jobs and ledger) cannot be reached or stays locked: retry later and
    spend nothing meanwhile, never run unbudgeted. The message never carries the driver's
    text, which may hold the URL."""

    code = "database_unavailable"


class SettingsError(AgentQueueError, ValueError):
    """A setting is invalid (raised at start-up); the message names the variable and the path
    into its value, e.g. `AGENTQUEUE_POOLS.batch.max is invalid: ...`."""

    code = "invalid_setting"


class InvalidPools(SettingsError):
    """`AGENTQUEUE_POOLS` cannot be used."""

    code = "invalid_pools"


class InvalidOffPeakWindows(SettingsError):
    """`AGENTQUEUE_OFFPEAK_WINDOWS` cannot be parsed (or never opens)."""

    code = "invalid_offpeak_windows"
