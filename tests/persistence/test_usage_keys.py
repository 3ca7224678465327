"""An entry's usage keys survive the trip through its JSON column: encoded once per key set,
decoded back to the same keys, with their windows' time zones."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from agentqueue.persistence.ledger_entries import decode_keys, encode_keys


def test_usage_keys_encode_to_json_and_decode_to_the_same_keys() -> None:
    paris = timezone(timedelta(hours=1))
    keys = (
        ("global", "daily", datetime(2026, 12, 1, tzinfo=UTC)),
        ("tenant:acme", "monthly", datetime(2026, 12, 1, tzinfo=paris)),
    )
    stored = json.loads(json.dumps(encode_keys(keys)))
    assert stored == [
        ["global", "daily", "2026-12-01T00:00:00+00:00"],
        ["tenant:acme", "monthly", "2026-12-01T00:00:00+01:00"],
    ]
    assert decode_keys(stored) == keys
    assert encode_keys(tuple(keys)) is encode_keys(keys)  # a key set is encoded once
