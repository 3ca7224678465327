"""The rate-limits file (TOML or JSON) and what provider reply headers say about limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentqueue.budget.errors import InvalidBudgetFile
from agentqueue.ratelimit.headers import observe, parse_duration
from agentqueue.ratelimit.limits_file import ModelLimits, key_id, load_rate_limits

TOML = """
[[limits]]
provider = "openai"
model = "*"
rpm = 500

[[limits]]
provider = "openai"
model = "gpt-4o-mini"
rpm = 1200
tpm = 2000000

[[limits]]
provider = "openai"
model = "gpt-4o-mini"
key_id = "{key}"
rpm = 30
"""


def test_toml_limits_match_the_most_specific_entry(tmp_path: Path) -> None:
    """A model's own entry beats the provider's "*", and a key's own entry beats both."""
    key = key_id("sk-second-key")
    path = tmp_path / "limits.toml"
    path.write_text(TOML.replace("{key}", key))
    table = load_rate_limits(path)

    assert table.lookup("openai", "gpt-4o-mini", "nokey") == ModelLimits(1200, 2_000_000)
    assert table.lookup("openai", "gpt-4o-mini", key) == ModelLimits(30, None)
    assert table.lookup("openai", "gpt-4.1", "nokey") == ModelLimits(500, None)
    assert not table.lookup("anthropic", "claude-haiku-4-5", "nokey").known
    assert key != key_id("sk-other") and "sk-" not in key


def test_json_limits_and_bad_files_are_refused_with_the_setting_named(tmp_path: Path) -> None:
    good = tmp_path / "limits.json"
    good.write_text(
        '{"limits": [{"provider": "anthropic", "model": "claude-haiku-4-5", "tpm": 9}]}'
    )
    assert load_rate_limits(good).lookup("anthropic", "claude-haiku-4-5", "x").tpm == 9
    bad = tmp_path / "bad.json"
    bad.write_text('{"limits": [{"provider": "openai", "model": "m", "rpm": 0, "tmp": 5}]}')
    with pytest.raises(InvalidBudgetFile) as raised:
        load_rate_limits(bad)
    # Every refused value, named from the setting as every setting is, and the file.
    assert raised.value.message == (
        "AGENTQUEUE_RATE_LIMITS_FILE.limits[0].rpm is invalid: Input should be greater than "
        "or equal to 1 (got 0); AGENTQUEUE_RATE_LIMITS_FILE.limits[0].tmp is invalid: unknown "
        f"key (a typo?) (got 5) (in {bad})"
    )
    assert len(load_rate_limits(None)) == 0


def test_headers_give_limits_and_a_429_gives_the_wait() -> None:
    served = observe(200, {"x-ratelimit-limit-requests": "1200", "x-ratelimit-limit-tokens": "9"})
    assert (served.rpm, served.tpm, served.wait_s) == (1200, 9, None)
    refused = observe(429, {"retry-after": "2", "anthropic-ratelimit-requests-limit": "50"})
    assert (refused.rpm, refused.wait_s) == (50, 2.0)
    assert observe(429, {"retry-after-ms": "250", "retry-after": "1"}).wait_s == 0.25
    assert [parse_duration(v) for v in ("6m0s", "20ms", "1.5s", "junk")] == [360, 0.02, 1.5, None]
