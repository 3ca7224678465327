"""The models the LLM test server serves, and its `GET /v1/models` answer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ModelList:
    """Served model ids; None serves any model and answers the listing with 404 (unknown)."""

    def __init__(self, models: Iterable[str] | None = None) -> None:
        self.models = None if models is None else tuple(models)

    def serves(self, model: str) -> bool:
        return self.models is None or model in self.models

    def listing(self) -> dict[str, Any] | None:
        """OpenAI's shape, which Anthropic's also satisfies (`data[].id`); None when unlisted."""
        if self.models is None:
            return None
        return {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "type": "model", "owned_by": "agentqueue-test"}
                for m in self.models
            ],
            "has_more": False,
        }
