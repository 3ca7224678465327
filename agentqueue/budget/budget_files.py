"""Read the operator's TOML or JSON files (prices, catalog, rate limits) into plain dicts, and
name what in them is refused the one way every setting is named (see `agentqueue.strict`)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentqueue.budget.errors import InvalidBudgetFile
from agentqueue.strict import describe_all


def read_table_file(path: Path, *, setting: str) -> dict[str, Any]:
    """Parse `path` as TOML (`.toml`) or JSON (anything else) into a dict.

    Raises:
        InvalidBudgetFile: naming the file and the `AGENTQUEUE_*` setting that points at it.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidBudgetFile(
            f"cannot read {path} ({setting}): {exc.strerror or exc}; fix the path or unset it"
        ) from None
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise InvalidBudgetFile(f"{path} ({setting}) is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidBudgetFile(f"{path} ({setting}) must hold a table/object at the top level")
    return data


def refused_file(path: Path | str, setting: str, error: ValidationError) -> InvalidBudgetFile:
    """Every refused value of the file `setting` points at, each named from the setting:
    `AGENTQUEUE_RATE_LIMITS_FILE.limits[0].rpm is invalid: ... (got 0) (in /etc/limits.toml)`."""
    return InvalidBudgetFile(f"{describe_all(setting, error)} (in {path})")
