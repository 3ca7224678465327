"""Cache keys: SHA-256 over canonical JSON of everything that can change a model's output."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from agentqueue.constants import CACHE_KEY_VERSION
from agentqueue.jobs import AgentJob

# Parameters a provider may accept that change its output; each is part of every key, even
# when absent, so adding one to `Params` later cannot make old and new requests collide.
OUTPUT_PARAMETERS = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "tools",
    "response_format",
)


def canonical_json(value: Any) -> bytes:
    """One byte string per value: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _normalize_text(text: str) -> str:
    # Same words typed on another OS or keyboard: NFC, LF line ends, no trailing blanks.
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return text.rstrip()


def _canonical_arguments(text: str) -> str:
    """JSON text rewritten canonically (tool parameters); other text unchanged."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return text
    try:
        return canonical_json(json.loads(stripped)).decode()
    except ValueError:
        return text


def normalize_messages(
    messages: Sequence[Mapping[str, Any]], *, canonical_arguments: bool = False
) -> list[dict[str, Any]]:
    """Messages reduced to what the model sees, so equivalent conversations share a key."""
    normalized = []
    for message in messages:
        content = _normalize_text(str(message.get("content", "")))
        if canonical_arguments:
            content = _canonical_arguments(content)
        item: dict[str, Any] = {"role": str(message["role"]).lower(), "content": content}
        if message.get("name"):
            item["name"] = message["name"]
        normalized.append(item)
    return normalized


def normalize_params(params: Mapping[str, Any], *, default_max_tokens: int) -> dict[str, Any]:
    """Every output parameter with provider defaults made explicit and order-free lists sorted."""
    result = {name: params.get(name) for name in OUTPUT_PARAMETERS}
    # Any parameter we do not know yet still goes into the key rather than being ignored.
    result.update({name: value for name, value in params.items() if name not in result})
    if result["max_tokens"] is None:
        result["max_tokens"] = default_max_tokens
    if result["temperature"] is not None:
        result["temperature"] = float(result["temperature"])
    if result["top_p"] is not None:
        result["top_p"] = float(result["top_p"])
    stop = result["stop"]
    result["stop"] = sorted(set(stop)) if stop else None
    return result


def cache_key(
    *,
    tenant: str,
    agent_type: str,
    provider: str,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    default_max_tokens: int,
    canonical_arguments: bool = False,
) -> str:
    """The hex SHA-256 naming one request's answer inside one tenant's namespace."""
    document = {
        "v": CACHE_KEY_VERSION,
        "tenant": tenant,
        "agent_type": agent_type,
        "provider": provider,
        "model": model,
        "messages": normalize_messages(messages, canonical_arguments=canonical_arguments),
        "params": normalize_params(params, default_max_tokens=default_max_tokens),
    }
    return hashlib.sha256(canonical_json(document)).hexdigest()


def is_deterministic(job: AgentJob) -> bool:
    """Temperature 0 or a fixed seed: the same request should give the same answer."""
    return job.params.temperature == 0 or job.params.seed is not None


def is_cacheable(job: AgentJob) -> bool:
    """Whether the job's answer may be stored: deterministic, or forced; never `no-store`."""
    mode = job.cache.mode
    if mode == "no-store":
        return False
    return mode == "force" or is_deterministic(job)


def is_readable(job: AgentJob) -> bool:
    """Whether the job may be answered from the cache (`no-cache` refreshes instead)."""
    return is_cacheable(job) and job.cache.mode != "no-cache"
