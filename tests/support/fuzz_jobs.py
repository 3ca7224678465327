"""A seeded generator of hostile and malformed jobs, as a hostile client would send them.

Every kind named in issue 11 is produced at least once per run (`REQUIRED_KINDS`), the rest are
random mutations of a valid job: wrong types, junk values, extra fields, odd Unicode.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# (kind, whether it can be written to a job file for the CLI)
REQUIRED_KINDS = (
    "deep_nesting_dict",
    "deep_nesting_text",
    "deadline_year_1",
    "deadline_year_9999",
    "surrogate_metadata_value",
    "surrogate_metadata_key",
    "non_string_key",
    "tuple_key",
    "circular_reference",
    "huge_int",
    "nan_metadata",
    "not_utf8_bytes",
    "nul_in_id",
    "surrogate_in_id",
)


@dataclass(frozen=True)
class FuzzCase:
    kind: str
    job: Any


def valid_job(rng: random.Random) -> dict[str, Any]:
    return {
        "id": f"fz-{uuid.UUID(int=rng.getrandbits(128)).hex}",
        "agent_type": "fuzz-bot",
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"question {rng.randrange(10**6)}"}],
        "params": {"temperature": 0, "max_tokens": 50},
        "priority": rng.choice(["critical", "high", "normal"]),
        "tenant": "fuzz",
        "metadata": {"n": rng.randrange(100)},
    }


def _nested(depth: int, container: str) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value] if container == "list" else {"k": value}
    return value


_JUNK: list[Any] = [
    None,
    True,
    -1,
    0,
    2**70,
    1e308,
    float("inf"),
    "",
    " ",
    "\x00",
    "\ud800",
    "\U0001f600" * 3,
    "a" * 300,
    [],
    {},
    [None],
    {"": None},
    "null",
    "2026-13-45",
    "'; DROP TABLE jobs; --",
]
_FIELDS = [
    "id",
    "agent_type",
    "model",
    "messages",
    "params",
    "priority",
    "tenant",
    "deadline",
    "cache",
    "metadata",
    "requirements",
]


def _required(kind: str, rng: random.Random) -> Any:
    job = valid_job(rng)
    if kind == "deep_nesting_dict":
        job["metadata"] = {
            "deep": _nested(rng.choice([1000, 1500, 5000]), rng.choice(["list", "dict"]))
        }
    elif kind == "deep_nesting_text":
        depth = rng.choice([1000, 3000, 100_000])
        return '{"metadata": ' + "[" * depth + "]" * depth + "}"
    elif kind == "deadline_year_1":
        job["deadline"] = rng.choice(
            ["0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00Z", "0001-01-02T03:04:05-01:00"]
        )
    elif kind == "deadline_year_9999":
        job["deadline"] = rng.choice(
            ["9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59Z", "9999-06-01T00:00:00+00:00"]
        )
    elif kind == "surrogate_metadata_value":
        job["metadata"] = {"note": "abc\ud800def"}
    elif kind == "surrogate_metadata_key":
        job["metadata"] = {"k\udfff": "v"}
    elif kind == "non_string_key":
        job["metadata"] = {1: "one"}
    elif kind == "tuple_key":
        job["metadata"] = {(1, 2): "pair"}
    elif kind == "circular_reference":
        loop: dict[str, Any] = {}
        loop["self"] = loop
        job["metadata"] = loop
    elif kind == "huge_int":
        job["metadata"] = {"big": 10**5000}
    elif kind == "nan_metadata":
        job["metadata"] = {"x": float("nan")}
    elif kind == "not_utf8_bytes":
        return b'{"agent_type": "\xff\xfe", "model": "m"}'
    elif kind == "nul_in_id":
        job["id"] = "abc\x00def"
    elif kind == "surrogate_in_id":
        job["id"] = "abc\udc80"
    return job


def _mutate(rng: random.Random) -> tuple[str, Any]:
    job = valid_job(rng)
    choice = rng.randrange(10)
    if choice == 0 and rng.random() < 0.1:  # about 1% valid jobs, so refusals dominate
        return "valid", job
    if choice == 0:
        choice = 9
    if choice == 1:
        job[rng.choice(["extra", "Model", "agent type", "\ud800"])] = rng.choice(_JUNK)
        return "extra_field", job
    if choice == 2:
        del job[rng.choice(["agent_type", "model", "messages"])]
        return "missing_field", job
    if choice == 3:
        message = copy.deepcopy(job["messages"][0])
        message[rng.choice(["role", "content", "name"])] = rng.choice(_JUNK)
        job["messages"] = [message]
        return "bad_message", job
    if choice == 4:
        job["params"] = {
            rng.choice(["temperature", "max_tokens", "top_p", "seed", "stop"]): rng.choice(_JUNK)
        }
        return "bad_params", job
    if choice == 5:
        return "not_an_object", rng.choice([[job], 42, None, "text", json.dumps([job])])
    if choice == 6:
        text = json.dumps(job)
        cut = rng.randrange(len(text))
        return "broken_json", text[:cut] + rng.choice(["", "}", "\x00", "\\u", '"'])
    if choice == 7:
        job["deadline"] = rng.choice(
            ["2026-01-01T00:00:00", "yesterday", 1e20, -1, "2026-01-01T00:00:00+99:00"]
        )
        return "bad_deadline", job
    if choice == 8:
        job["metadata"] = {"k": rng.choice([[1], {"a": 1}, "x" * 5000, b"bytes", {1, 2}])}
        return "bad_metadata", job
    field = rng.choice(_FIELDS)
    job[field] = rng.choice(_JUNK)
    return f"junk_{field}", job


def fuzz_cases(count: int, seed: int) -> Iterator[FuzzCase]:
    """`count` cases; the first ones are every required kind, the rest random mutations."""
    rng = random.Random(seed)
    for index in range(count):
        if index < len(REQUIRED_KINDS) * 3:
            kind = REQUIRED_KINDS[index % len(REQUIRED_KINDS)]
            yield FuzzCase(kind, _required(kind, rng))
        else:
            kind, job = _mutate(rng)
            yield FuzzCase(kind, job)
