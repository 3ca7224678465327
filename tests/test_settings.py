"""Settings come from AGENTQUEUE_* variables; bad ones fail at start-up naming the variable."""

from __future__ import annotations

import pytest

from agentqueue.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AGENTQUEUE_SIMULATED_LATENCY_MS", "abc"),
        ("AGENTQUEUE_SIMULATED_LATENCY_MS", "-5"),
        ("AGENTQUEUE_PROVIDER", "skynet"),
        ("AGENTQUEUE_REDIS_URL", "http://localhost"),
        ("AGENTQUEUE_TIMEZONE", "Mars/Olympus"),
        ("AGENTQUEUE_WORKER_CONCURRENCY", "0"),
    ],
)
def test_an_invalid_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert variable in str(raised.value)


def test_defaults_are_the_embedded_ones(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("AGENTQUEUE_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.provider == "simulated"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'agentqueue.db'}"
    assert settings.worker_pool == "threads"
    assert settings.effective_visibility_timeout_s > settings.job_time_limit_s


def test_a_refused_url_never_shows_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTQUEUE_REDIS_URL", "http://admin:hunter2@cache.internal:6379")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "AGENTQUEUE_REDIS_URL" in str(raised.value)
    assert "hunter2" not in str(raised.value)
