"""The byte envelope of values kept in Redis: format, expiry, then payload (zlib above a size)."""

from __future__ import annotations

import struct
import zlib

_HEADER = struct.Struct(">BQ")  # format, expires_at in Unix milliseconds
_RAW = 0
_ZLIB = 1


class EnvelopeError(ValueError):
    """A Redis value that is not one of ours (or is corrupt)."""


def pack(payload: bytes, expires_at: float, *, compress_min_bytes: int) -> bytes:
    """Envelope `payload`, compressing it when it is large and compression actually helps."""
    expires_ms = int(expires_at * 1000)
    if len(payload) >= compress_min_bytes:
        compressed = zlib.compress(payload, 6)
        if len(compressed) < len(payload):
            return _HEADER.pack(_ZLIB, expires_ms) + compressed
    return _HEADER.pack(_RAW, expires_ms) + payload


def unpack(value: bytes) -> tuple[bytes, float]:
    """`(payload, expires_at)` from an envelope.

    Raises:
        EnvelopeError: the value is not an envelope.
    """
    if len(value) < _HEADER.size:
        raise EnvelopeError("value shorter than the envelope header")
    kind, expires_ms = _HEADER.unpack_from(value)
    body = value[_HEADER.size :]
    if kind == _RAW:
        return body, expires_ms / 1000
    if kind == _ZLIB:
        try:
            return zlib.decompress(body), expires_ms / 1000
        except zlib.error as exc:
            raise EnvelopeError(f"corrupt compressed value: {exc}") from None
    raise EnvelopeError(f"unknown envelope format {kind}")
