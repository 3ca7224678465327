"""Structural checks of raw job input, before any JSON encoding or pydantic validation.

A hostile client can hand the Python API things JSON cannot say (circular references,
non-string keys, lone surrogates, integers of thousands of digits) or nest a document deep
enough to exhaust the interpreter's recursion limit. Each would otherwise escape as a raw
`RecursionError`, `ValueError` or driver error; here they become one `(field, problem)`.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time
from decimal import Decimal

from pydantic import BaseModel

from agentqueue.constants import MAX_JOB_DEPTH, MAX_JOB_INT

Problem = tuple[str, str]


def _unencodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _path(parts: tuple[str, ...]) -> str:
    return ".".join(parts) or "job"


def _scalar_problem(value: object) -> str | None:
    if isinstance(value, str):
        return "contains a lone surrogate (not valid Unicode)" if _unencodable(value) else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if -MAX_JOB_INT <= value <= MAX_JOB_INT else "is an integer out of range"
    if isinstance(value, float):
        return None if math.isfinite(value) else "is not a finite number"
    if isinstance(value, Decimal):
        return None if value.is_finite() else "is not a finite number"
    if isinstance(value, datetime | date | time | BaseModel):
        return None  # the Python API may pass these; pydantic validates them
    return f"is a {type(value).__name__}, not a JSON value"


def structure_problem(data: object) -> Problem | None:
    """The first part of `data` that is not plain, finite, acyclic JSON, or None.

    Iterative on purpose: recursion is what a deeply nested document would exhaust.
    """
    # Each entry carries the ids of its enclosing containers: a cycle is a container that
    # encloses itself (a sub-object shared by two fields is fine).
    stack: list[tuple[object, tuple[str, ...], tuple[int, ...]]] = [(data, (), ())]
    while stack:
        value, parts, ancestors = stack.pop()
        if isinstance(value, dict | list | tuple):
            if len(ancestors) >= MAX_JOB_DEPTH:
                return _path(parts), f"is nested deeper than {MAX_JOB_DEPTH} levels"
            if id(value) in ancestors:
                return _path(parts), "refers to itself (a circular reference)"
            inner = (*ancestors, id(value))
            children: list[tuple[object, tuple[str, ...], tuple[int, ...]]] = []
            if isinstance(value, dict):
                for key, item in value.items():
                    if not isinstance(key, str):
                        return _path(parts), f"has a key that is not a string ({key!r:.40})"
                    if _unencodable(key):
                        return _path(parts), "has a key with a lone surrogate"
                    children.append((item, (*parts, key), inner))
            else:
                for index, item in enumerate(value):
                    children.append((item, (*parts, str(index)), inner))
            stack.extend(children)
            continue
        problem = _scalar_problem(value)
        if problem is not None:
            return _path(parts), problem
    return None


def safe_field(field: str) -> str:
    """A field path fit for an error message (keys can hold anything a client sent)."""
    return field.encode("utf-8", "backslashreplace").decode("utf-8")[:200]


def first_key(field: str) -> str:
    return field.split(".", 1)[0]


def describe(problem: Problem) -> str:
    field, what = problem
    return f"{safe_field(field)} {what}"
