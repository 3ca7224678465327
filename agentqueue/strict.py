"""`StrictModel`: the one base of every pydantic model that validates outside input, and the one
way a refused value is named.

Every refusal reads `FIELD is invalid: PROBLEM (got VALUE)`, where FIELD is where the value was
written followed by the path into it: `AGENTQUEUE_POOLS.batch.max`, `forecast.hours[0].hour`,
`AGENTQUEUE_OFFPEAK_WINDOWS[1]` (the second comma-separated part). Settings, pools, off-peak
windows, cache tiers and the capacity-plan forecast all say it this way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

_SHOWN_CHARS = 80
_USERINFO = re.compile(r"://[^/@\s]*@")
_PREFIXES = ("Value error, ", "Assertion failed, ")
# pydantic's wording where it speaks of Python rather than of what was written.
_PROBLEMS = {
    "missing": "it is required",
    "extra_forbidden": "unknown key (a typo?)",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "too_short": "needs at least {min_length} item(s)",
}


class StrictModel(BaseModel):
    """Unknown fields are errors (a typo never passes silently) and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def field_name(root: str, loc: Iterable[int | str]) -> str:
    """`root` and the path into it: `.name` for a key or field, `[n]` for a position."""
    name = root
    for step in loc:
        if isinstance(step, int):
            name += f"[{step}]"
        elif step != "[key]":  # pydantic's mark of a refused mapping key: the name ends with it
            name += f".{step}" if name else step
    return name or "value"


def invalid(field: str, problem: str, got: str | None = None) -> str:
    """The one sentence for a refused value: `FIELD is invalid: PROBLEM (got VALUE)`."""
    return f"{field} is invalid: {problem}" + (f" (got {got})" if got else "")


def describe(field: str, error: ErrorDetails, *, hide_value: bool = False) -> str:
    """One pydantic error as that sentence; `hide_value` for secrets (never echoed)."""
    template = _PROBLEMS.get(error["type"])
    problem = template.format_map(error.get("ctx", {})) if template else error["msg"]
    for prefix in _PREFIXES:
        problem = problem.removeprefix(prefix)
    got = "a value that is not shown" if hide_value else shown(error.get("input"))
    return invalid(field, problem, got)


def describe_all(root: str, error: ValidationError) -> str:
    """Every error of `error`, each naming its field under `root`, joined by `; `."""
    return "; ".join(describe(field_name(root, detail["loc"]), detail) for detail in error.errors())


def shown(value: object) -> str | None:
    """A refused value as a message may show it: short, never a URL's password; None for
    objects and lists (the field name says where to look)."""
    if isinstance(value, Decimal):
        return str(value)
    if not isinstance(value, str | int | float | None):
        return None
    text = _USERINFO.sub("://***@", repr(value))
    return text if len(text) <= _SHOWN_CHARS else f"{text[: _SHOWN_CHARS - 3]}..."
