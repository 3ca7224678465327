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
    """The SQL database cannot be reached (never the driver's text: it may hold the URL)."""

    code = "database_unavailable"
