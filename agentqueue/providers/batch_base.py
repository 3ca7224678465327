"""The `BatchAPI` protocol (a provider's batch endpoint) and the plain data that crosses it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from agentqueue.providers.base import ProviderError, ProviderRequest, ProviderResponse
from agentqueue.settings import Settings


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One request of a batch; `custom_id` is unique within the batch (results are unordered)."""

    custom_id: str
    request: ProviderRequest


@dataclass(frozen=True, slots=True)
class LineResult:
    """What became of one request: an answer, an error, or `unfinished` (expired, cancelled:
    the provider did not run it and did not charge it)."""

    response: ProviderResponse | None = None
    error: ProviderError | None = None
    unfinished: bool = False


@dataclass(frozen=True, slots=True)
class BatchPoll:
    """A batch's remote status; `results` (by custom id) only once it has ended."""

    status: str
    ended: bool
    results: dict[str, LineResult] = field(default_factory=dict)


class BatchAPI(Protocol):
    """Submit, find again after a crash, poll and cancel provider batches.

    `key` is our batch id: sent with the batch where the API keeps metadata, so a batch
    created just before a crash can be found instead of being created twice.
    """

    name: str

    def submit(self, key: str, items: Sequence[BatchItem]) -> str:
        """Create the batch; returns its remote id. Raises `ProviderError`."""
        ...

    def find(self, key: str) -> str | None:
        """The remote id of a batch created earlier with `key`, if the API can tell."""
        ...

    def poll(self, remote_id: str, items: Sequence[BatchItem]) -> BatchPoll:
        """Its status, with every item's result once it has ended. Raises `ProviderError`."""
        ...

    def cancel(self, remote_id: str) -> None:
        """Ask the provider to stop; results of requests already done still come."""
        ...

    def close(self) -> None: ...


def batch_call_timeout_s(settings: Settings) -> float:
    """Each remote call ends (or fails) within a third of the hold a beat task has on a batch,
    so a submit's upload and create finish while it still holds the batch: no second beat task
    can take the batch and submit it again while the first one's call is still on its way."""
    return min(settings.http_timeout_s * 2, settings.batch_hold_s / 3)


def request_to_json(request: ProviderRequest) -> str:
    return json.dumps(asdict(request), separators=(",", ":"))


def request_from_json(text: str) -> ProviderRequest:
    data: dict[str, Any] = json.loads(text)
    return ProviderRequest(**data)


def line_error(status: int | None, code: str, message: str) -> ProviderError:
    """A failed line; retryable as a live call would be (rate limits, server errors)."""
    retryable = status is None or status in (408, 409, 429) or status >= 500
    return ProviderError(message[:300], retryable=retryable, code=code or "provider_error")
