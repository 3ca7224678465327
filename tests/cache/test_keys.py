"""Cache keys: tenant namespaces, every output-changing parameter, message normalisation, and
which jobs may read or write the cache."""

from __future__ import annotations

import re
from typing import Any

import pytest

from agentqueue.cache import CacheRequest, cache_key, is_cacheable, is_readable
from agentqueue.cache.keys import normalize_messages
from agentqueue.settings import load_settings
from tests.cache.support import make_job

SETTINGS = load_settings()


def key_of(**overrides: Any) -> str:
    return CacheRequest.for_job(
        make_job(**overrides), provider="simulated", model="gpt-4o-mini", settings=SETTINGS
    ).key


def raw_key(**overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "tenant": "acme",
        "agent_type": "support",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "params": {"temperature": 0},
        "default_max_tokens": 1024,
    }
    arguments.update(overrides)
    return cache_key(**arguments)


def test_same_request_same_key_and_a_sha256() -> None:
    # Given the same job twice, When keyed, Then the keys match and are 64 hex digits.
    assert key_of() == key_of()
    assert re.fullmatch(r"[0-9a-f]{64}", key_of())


def test_tenants_never_share_a_key() -> None:
    # Given one request from two tenants, Then their keys differ (no cross-tenant hit possible).
    assert key_of(tenant="acme") != key_of(tenant="globex")


@pytest.mark.parametrize(
    "field, value",
    [
        ("temperature", 0.5),
        ("top_p", 0.9),
        ("max_tokens", 77),
        ("stop", ["END"]),
        ("seed", 42),
        ("tools", [{"type": "function", "function": {"name": "lookup_order"}}]),
        ("response_format", {"type": "json_object"}),
    ],
)
def test_every_output_changing_parameter_changes_the_key(field: str, value: Any) -> None:
    # Given a request, When one output-changing parameter is set, Then the key changes.
    base = {"temperature": 0}
    assert raw_key(params=base) != raw_key(params={**base, field: value})


@pytest.mark.parametrize(
    "part, value",
    [
        ("agent_type", "billing"),
        ("provider", "anthropic"),
        ("model", "gpt-4o"),
        ("messages", [{"role": "user", "content": "hello"}]),
        ("tenant", "globex"),
    ],
)
def test_identity_parts_change_the_key(part: str, value: Any) -> None:
    assert raw_key() != raw_key(**{part: value})


def test_resolved_model_not_the_requested_alias_is_keyed() -> None:
    # Given model="auto" resolved to two different models, Then the keys differ.
    job = make_job(model="auto", requirements={"min_quality": 0.5})
    first = CacheRequest.for_job(job, provider="openai", model="gpt-4o-mini", settings=SETTINGS)
    second = CacheRequest.for_job(job, provider="openai", model="gpt-4o", settings=SETTINGS)
    assert first.key != second.key
    assert first.model == "gpt-4o-mini"


def test_default_max_tokens_is_made_explicit() -> None:
    # Given no max_tokens, Then it keys like the configured default, not like "unlimited".
    assert raw_key(params={"temperature": 0}) == raw_key(
        params={"temperature": 0, "max_tokens": 1024}
    )
    assert raw_key(params={"temperature": 0}) != raw_key(
        params={"temperature": 0}, default_max_tokens=2048
    )


def test_equivalent_parameters_share_a_key() -> None:
    # Stop sequences are a set; 0 and 0.0 are the same temperature.
    assert raw_key(params={"temperature": 0, "stop": ["b", "a"]}) == raw_key(
        params={"temperature": 0.0, "stop": ["a", "b", "a"]}
    )
    assert raw_key(params={"stop": []}) == raw_key(params={"stop": None})


def test_message_normalisation() -> None:
    # Given the same words typed on another system (CRLF, NFD accents, trailing blanks),
    # Then the messages normalise to the same thing; real differences survive.
    windows = [{"role": "USER", "content": "Cafe\u0301 menu?\r\nThanks  \n"}]
    unix = [{"role": "user", "content": "Café menu?\nThanks"}]
    assert normalize_messages(windows) == normalize_messages(unix)
    assert raw_key(messages=windows) == raw_key(messages=unix)
    assert raw_key(messages=[{"role": "user", "content": "Café menu? Thanks"}]) != raw_key(
        messages=unix
    )
    assert raw_key(messages=[{"role": "system", "content": "hi"}]) != raw_key(
        messages=[{"role": "user", "content": "hi"}]
    )
    # Leading whitespace can change what a model reads, so it is kept.
    assert raw_key(messages=[{"role": "user", "content": "  hi"}]) != raw_key(
        messages=[{"role": "user", "content": "hi"}]
    )


def test_message_names_and_order_matter() -> None:
    a = {"role": "user", "content": "one"}
    b = {"role": "user", "content": "two"}
    assert raw_key(messages=[a, b]) != raw_key(messages=[b, a])
    assert raw_key(messages=[{**a, "name": "alice"}]) != raw_key(messages=[a])


def test_tool_results_are_keyed_on_canonical_arguments() -> None:
    # Given tool parameters as JSON in a different order and spacing,
    # When the policy is tool_result, Then they share a key; with other policies they do not.
    spaced = [{"role": "tool", "content": '{"sku": "A-1", "qty": 2}'}]
    compact = [{"role": "tool", "content": '{"qty":2,"sku":"A-1"}'}]
    assert raw_key(messages=spaced, canonical_arguments=True) == raw_key(
        messages=compact, canonical_arguments=True
    )
    assert raw_key(messages=spaced) != raw_key(messages=compact)
    job_a = make_job(messages=spaced, cache={"policy": "tool_result"})
    job_b = make_job(messages=compact, cache={"policy": "tool_result"})
    assert (
        CacheRequest.for_job(job_a, provider="p", model="m", settings=SETTINGS).key
        == CacheRequest.for_job(job_b, provider="p", model="m", settings=SETTINGS).key
    )
    # Values still count.
    other = [{"role": "tool", "content": '{"qty":3,"sku":"A-1"}'}]
    assert raw_key(messages=other, canonical_arguments=True) != raw_key(
        messages=compact, canonical_arguments=True
    )


@pytest.mark.parametrize(
    "params, mode, cacheable, readable",
    [
        ({"temperature": 0}, "default", True, True),
        ({"seed": 7, "temperature": 0.9}, "default", True, True),
        ({"temperature": 0.7}, "default", False, False),
        ({}, "default", False, False),  # provider default temperature is not deterministic
        ({"temperature": 0.7}, "force", True, True),
        ({"temperature": 0}, "no-cache", True, False),  # refresh: write, do not read
        ({"temperature": 0}, "no-store", False, False),
        ({"temperature": 0.7}, "no-store", False, False),
    ],
)
def test_which_jobs_use_the_cache(
    params: dict[str, Any], mode: str, cacheable: bool, readable: bool
) -> None:
    job = make_job(params=params, cache={"mode": mode})
    assert is_cacheable(job) is cacheable
    assert is_readable(job) is readable
    request = CacheRequest.for_job(job, provider="p", model="m", settings=SETTINGS)
    assert (request.writable, request.readable) == (cacheable, readable)


def test_cache_disabled_in_settings_turns_every_request_off() -> None:
    settings = load_settings(cache_enabled=False)
    request = CacheRequest.for_job(make_job(), provider="p", model="m", settings=settings)
    assert not request.readable and not request.writable
