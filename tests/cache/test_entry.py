"""Cache entries and the Redis envelope: JSON only, compression round trip, storability."""

from __future__ import annotations

import json
import random
import zlib

import pytest

from agentqueue.cache import CacheEntry
from agentqueue.cache.codec import EnvelopeError, pack, unpack
from agentqueue.cache.entry import EntryDecodeError
from tests.cache.support import answer


def test_entry_round_trips_through_json() -> None:
    # Given an entry with non-ASCII text, When serialised, Then it is plain JSON and parses back.
    entry = answer('Voilà — "quoted"\nnew line ✓')
    payload = entry.to_json()
    assert json.loads(payload)["output"] == entry.output
    assert CacheEntry.from_json(payload) == entry


@pytest.mark.parametrize(
    "payload", [b"", b"{", b"[1, 2]", b'{"output": "x"}', b"\x80\x04pickle", b"{} trailing"]
)
def test_foreign_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(EntryDecodeError):
        CacheEntry.from_json(payload)


@pytest.mark.parametrize(
    "finish_reason, storable",
    [("stop", True), ("tool_calls", True), ("length", False), ("error", False)],
)
def test_truncated_and_failed_outputs_are_not_storable(finish_reason: str, storable: bool) -> None:
    assert answer(finish_reason=finish_reason).storable is storable


def test_large_values_are_compressed_and_round_trip() -> None:
    # Given a payload above the threshold, When packed, Then it is zlib-compressed and smaller,
    # and unpacks to the same bytes and expiry.
    payload = answer("the same sentence again. " * 400).to_json()
    packed = pack(payload, 1_900_000_000.25, compress_min_bytes=1024)
    assert len(packed) < len(payload) / 5
    assert packed[0] == 1
    assert zlib.decompress(packed[9:]) == payload
    assert unpack(packed) == (payload, 1_900_000_000.25)


def test_small_or_incompressible_values_are_stored_raw() -> None:
    small = answer("short").to_json()
    assert pack(small, 1.0, compress_min_bytes=1024)[0] == 0
    noise = random.Random(3).randbytes(2048)
    packed = pack(noise, 1.0, compress_min_bytes=16)
    assert packed[0] == 0 and unpack(packed)[0] == noise


@pytest.mark.parametrize(
    "value", [b"", b"\x00", b"\x07" + b"\x00" * 8 + b"x", b"\x01" + b"\x00" * 8 + b"nozlib"]
)
def test_foreign_envelopes_are_refused(value: bytes) -> None:
    with pytest.raises(EnvelopeError):
        unpack(value)
