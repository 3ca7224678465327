"""The simulated provider's batch mode: a batch ends at its first poll, answered exactly as
the simulated provider answers live calls (so the demo shows the batch price)."""

from __future__ import annotations

from collections.abc import Sequence

from agentqueue.providers.batch_base import BatchItem, BatchPoll, LineResult
from agentqueue.providers.simulated import SimulatedProvider


class SimulatedBatches:
    name = "simulated"

    def __init__(self) -> None:
        self._model = SimulatedProvider()

    def submit(self, key: str, items: Sequence[BatchItem]) -> str:
        return f"simbatch-{key}"

    def find(self, key: str) -> str | None:
        return None

    def poll(self, remote_id: str, items: Sequence[BatchItem]) -> BatchPoll:
        results = {
            item.custom_id: LineResult(response=self._model.complete(item.request))
            for item in items
        }
        return BatchPoll("ended", ended=True, results=results)

    def cancel(self, remote_id: str) -> None:
        return None

    def close(self) -> None:
        return None
