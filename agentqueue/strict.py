"""`StrictModel`: the one base of every pydantic model that validates outside input."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown fields are errors (a typo never passes silently) and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
