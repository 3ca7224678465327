"""Pools, off-peak windows and cache tiers are typed settings: the variables keep their text
formats, `Settings` holds the parsed values, and a bad value names its field as
`VARIABLE.path is invalid: ...` under a stable code, whichever way it is read."""

from __future__ import annotations

import json

import pytest

from agentqueue.cache.policy import policy_for
from agentqueue.errors import InvalidOffPeakWindows, InvalidPools, SettingsError
from agentqueue.scheduler.pools import DEFAULT_POOLS, PoolSpec, parse_pools
from agentqueue.scheduler.windows import OffPeakWindow, parse_offpeak_windows
from agentqueue.settings import Settings, load_settings

ALL_QUEUES = ["critical", "high", "normal", "low"]


# Good values: the text formats parse to typed values.


def test_defaults_are_typed_values() -> None:
    settings = Settings(_env_file=None)
    assert settings.offpeak_windows == (OffPeakWindow(22 * 60, 6 * 60),)
    assert settings.pools == DEFAULT_POOLS
    assert settings.cache_agent_response_tiers == ("l1", "l2")
    assert settings.cache_model_output_tiers == ("l2", "l3")
    assert settings.cache_conversation_context_tiers == ("l1",)
    assert settings.cache_tool_result_tiers == ("l1", "l2")


def test_the_variables_text_formats_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given each variable written as the README documents it
    monkeypatch.setenv("AGENTQUEUE_OFFPEAK_WINDOWS", " 22:00-06:00 , 12:00 - 13:30,12:00-13:30")
    monkeypatch.setenv(
        "AGENTQUEUE_POOLS",
        json.dumps({"all": {"queues": [*ALL_QUEUES, "agentqueue.low"], "min": 0, "max": 8}}),
    )
    monkeypatch.setenv("AGENTQUEUE_CACHE_MODEL_OUTPUT_TIERS", "l3,l1,l1")
    # When the settings are read
    settings = load_settings()
    # Then they hold parsed values: windows sorted and once each, queues in full and once
    # each, tiers in tier order and once each
    assert settings.offpeak_windows == (OffPeakWindow(720, 810), OffPeakWindow(1320, 360))
    assert settings.pools == (
        PoolSpec("all", tuple(f"agentqueue.{queue}" for queue in ALL_QUEUES), 0, 8),
    )
    assert settings.cache_model_output_tiers == ("l1", "l3")
    assert policy_for("model_output", settings).tiers == frozenset({"l1", "l3"})


def test_constructor_arguments_take_text_or_typed_values() -> None:
    from_text = Settings(
        _env_file=None, offpeak_windows="18:00-24:00", pools="", cache_tool_result_tiers="l3"
    )
    typed = Settings(
        _env_file=None,
        offpeak_windows=(OffPeakWindow(1080, 1440),),
        pools=DEFAULT_POOLS,
        cache_tool_result_tiers=("l3",),
    )
    assert from_text == typed
    assert typed.pools == DEFAULT_POOLS  # blank AGENTQUEUE_POOLS keeps the defaults
    assert from_text.cache_tool_result_tiers == ("l3",)


# Bad values: a stable code, and the field named the same way everywhere.


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            {"all": {"queues": ALL_QUEUES, "min": 1, "max": 0}},
            "AGENTQUEUE_POOLS.all.max is invalid: Input should be greater than or equal to 1 "
            "(got 0)",
        ),
        (
            {"all": {"queues": ["critical", "high", "normal", "lowest"], "min": 1, "max": 2}},
            "AGENTQUEUE_POOLS.all.queues[3] is invalid: unknown queue 'lowest'",
        ),
        (
            {"all": {"queues": ALL_QUEUES, "min": 1, "max": 2, "prefetch": 3}},
            "AGENTQUEUE_POOLS.all.prefetch is invalid: unknown key (a typo?) (got 3)",
        ),
        (
            {"all": {"queues": ["critical", "high", "normal"], "min": 1, "max": 2}},
            "AGENTQUEUE_POOLS is invalid: no pool consumes agentqueue.low",
        ),
    ],
)
def test_a_bad_pool_names_its_field(
    monkeypatch: pytest.MonkeyPatch, value: dict[str, object], expected: str
) -> None:
    text = json.dumps(value)
    monkeypatch.setenv("AGENTQUEUE_POOLS", text)
    with pytest.raises(InvalidPools) as from_settings:
        load_settings()
    with pytest.raises(InvalidPools) as parsed:
        parse_pools(text)
    # The settings and the parser say the same, under the pools' own code
    assert from_settings.value.code == parsed.value.code == "invalid_pools"
    assert isinstance(from_settings.value, SettingsError)  # the CLI shows it as one coded line
    assert from_settings.value.message == parsed.value.message
    assert from_settings.value.message.startswith(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("22:00-06:00,25:00-26:00", "AGENTQUEUE_OFFPEAK_WINDOWS[1] is invalid: a time is outside"),
        ("late-night", "AGENTQUEUE_OFFPEAK_WINDOWS[0] is invalid: not HH:MM-HH:MM"),
        (" , ", "AGENTQUEUE_OFFPEAK_WINDOWS is invalid: it is empty"),
    ],
)
def test_bad_offpeak_windows_name_their_field(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    monkeypatch.setenv("AGENTQUEUE_OFFPEAK_WINDOWS", text)
    with pytest.raises(InvalidOffPeakWindows) as from_settings:
        load_settings()
    with pytest.raises(InvalidOffPeakWindows) as parsed:
        parse_offpeak_windows(text)
    assert from_settings.value.code == parsed.value.code == "invalid_offpeak_windows"
    assert from_settings.value.message == parsed.value.message
    assert from_settings.value.message.startswith(expected)
    assert "e.g. 22:00-06:00" in from_settings.value.message  # says what a good value is


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("l1,l4", "AGENTQUEUE_CACHE_AGENT_RESPONSE_TIERS[1] is invalid: Input should be 'l1', "),
        ("l1, l2", "AGENTQUEUE_CACHE_AGENT_RESPONSE_TIERS[1] is invalid"),  # no spaces, as before
        ("", "AGENTQUEUE_CACHE_AGENT_RESPONSE_TIERS[0] is invalid"),
        ("l1,", "AGENTQUEUE_CACHE_AGENT_RESPONSE_TIERS[1] is invalid"),
    ],
)
def test_bad_cache_tiers_name_their_field(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    monkeypatch.setenv("AGENTQUEUE_CACHE_AGENT_RESPONSE_TIERS", text)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert raised.value.code == "invalid_setting"
    assert raised.value.message.startswith(expected)


def test_several_bad_fields_are_all_named_under_the_general_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTQUEUE_OFFPEAK_WINDOWS", "soon")
    monkeypatch.setenv("AGENTQUEUE_CACHE_TOOL_RESULT_TIERS", "l9")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert type(raised.value) is SettingsError
    assert raised.value.code == "invalid_setting"
    assert "AGENTQUEUE_OFFPEAK_WINDOWS[0] is invalid" in raised.value.message
    assert "AGENTQUEUE_CACHE_TOOL_RESULT_TIERS[0] is invalid" in raised.value.message


def test_a_json_variable_that_is_not_json_is_named_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTQUEUE_BUDGET_DEFER_PRIORITIES", "low")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert raised.value.code == "invalid_setting"
    assert raised.value.message == "AGENTQUEUE_BUDGET_DEFER_PRIORITIES is invalid: it is not JSON"
