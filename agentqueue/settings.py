"""The one typed `Settings` object, read from `AGENTQUEUE_*` environment variables and `.env`."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as UndecodableSetting

from agentqueue.errors import InvalidOffPeakWindows, InvalidPools, SettingsError
from agentqueue.setting_types.pools import DEFAULT_POOLS, Pools
from agentqueue.setting_types.tiers import CacheTiers
from agentqueue.setting_types.windows import OffPeakWindow, OffPeakWindows
from agentqueue.strict import describe, field_name, invalid

ENV_PREFIX = "AGENTQUEUE_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# A refused value of these fields raises its own coded error (a `SettingsError` still).
_CODED_ERRORS: dict[str, type[SettingsError]] = {
    "pools": InvalidPools,
    "offpeak_windows": InvalidOffPeakWindows,
}
_SECRET_SUFFIXES = ("_key", "_password", "_secret")


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "agentqueue"


class Settings(BaseSettings):
    """Every knob of agentqueue. Field `foo_bar` is read from `AGENTQUEUE_FOO_BAR`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    # Where things live.
    data_dir: Path = Field(default_factory=_default_data_dir)
    redis_url: str = DEFAULT_REDIS_URL
    database_url: str | None = None
    cache_redis_url: str | None = None

    # The LLM provider.
    provider: Literal["simulated", "openai", "anthropic"] = "simulated"
    simulated_latency_ms: int = Field(default=0, ge=0, le=600_000)
    simulated_failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    # Jobs.
    max_job_bytes: int = Field(default=1024 * 1024, ge=1024)
    default_max_tokens: int = Field(default=1024, ge=1)
    job_time_limit_s: int = Field(default=300, ge=1)
    job_max_retries: int = Field(default=5, ge=0)
    result_ttl_s: int = Field(default=86_400, ge=1)
    # A claimed job belongs to its worker for this long; a live worker renews the lease every
    # third of it, and a job whose lease ran out (its worker died) is sent again from SQL.
    # 15 s recovers a SIGKILLed worker's jobs in about 20 s.
    job_lease_s: int = Field(default=15, ge=2, le=3600)
    # Agent types whose jobs must never call the provider twice: when a crash leaves it
    # unknown whether a call was made, such a job fails (`call_outcome_unknown`) instead of
    # being retried. Comma list; a job's own `repeatable` wins.
    no_repeat_agent_types: str = ""

    # Workers.
    worker_pool: Literal["threads", "gevent", "prefork", "solo"] = "threads"
    worker_concurrency: int = Field(default=64, ge=1, le=4096)
    worker_prefetch_multiplier: int = Field(default=4, ge=1)
    visibility_timeout_s: int = Field(default=0, ge=0)
    auto_migrate: bool = True
    batch_size: int = Field(default=16, ge=1, le=1000)
    batch_timeout_ms: int = Field(default=100, ge=0, le=60_000)
    packed_batch_size: int = Field(default=100, ge=1, le=1000)
    worker_max_memory_mb: int = Field(default=2048, ge=0)  # 0 turns the memory guard off
    worker_memory_soft_fraction: float = Field(default=0.8, gt=0.0, lt=1.0)
    worker_memory_check_s: float = Field(default=5.0, gt=0.0)

    # Providers.
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_api_key: SecretStr | None = None
    anthropic_version: str = "2023-06-01"
    http_max_connections: int = Field(default=20, ge=1, le=4096)
    http_max_connections_per_host: int = Field(default=10, ge=1, le=4096)
    http_keepalive_s: float = Field(default=30.0, ge=0.0)
    http_timeout_s: float = Field(default=30.0, gt=0.0)
    provider_max_attempts: int = Field(default=4, ge=1, le=20)
    provider_backoff_base_s: float = Field(default=0.5, ge=0.0)
    provider_backoff_max_s: float = Field(default=20.0, ge=0.0)
    provider_max_retry_after_s: float = Field(default=60.0, ge=0.0)

    # Shared provider limits, fallbacks, circuit breaker, served models.
    rate_limits_file: Path | None = None
    rate_limit_burst_s: float = Field(default=0.5, gt=0.0, le=60.0)
    rate_limit_max_wait_s: float = Field(default=120.0, ge=0.0)
    fallback_after_wait_s: float = Field(default=10.0, ge=0.0)
    outage_max_wait_s: float = Field(default=300.0, ge=0.0)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_window_s: float = Field(default=30.0, gt=0.0)
    breaker_cooling_s: float = Field(default=15.0, gt=0.0)
    served_models: str | None = None
    served_models_refresh_s: float = Field(default=300.0, gt=0.0)

    # Budget.
    prices_file: Path | None = None
    catalog_file: Path | None = None
    selection: Literal["cheapest", "balanced"] = "cheapest"
    selection_weight_cost: float = Field(default=0.4, ge=0.0, le=1.0)
    selection_weight_quality: float = Field(default=0.4, ge=0.0, le=1.0)
    selection_weight_speed: float = Field(default=0.2, ge=0.0, le=1.0)
    budget_alert_at: float = Field(default=0.50, gt=0.0, le=1.0)
    budget_right_size_at: float = Field(default=0.80, gt=0.0, le=1.0)
    budget_defer_at: float = Field(default=0.90, gt=0.0, le=1.0)
    budget_high_priority_only_at: float = Field(default=0.95, gt=0.0, le=1.0)
    budget_refuse_at: float = Field(default=1.00, gt=0.0, le=1.0)
    budget_defer_priorities: tuple[str, ...] = ("low",)
    budget_defer_min_slack_s: int = Field(default=900, ge=0)
    # How long a job may wait for room held by other jobs' reservations before it is refused
    # (never past its deadline); 0 refuses at once, as when the money is spent.
    budget_max_wait_s: float = Field(default=180.0, ge=0.0)
    budget_webhook_url: str | None = None
    budget_webhook_timeout_s: float = Field(default=2.0, gt=0.0)
    reservation_stale_after_s: int = Field(default=0, ge=0)
    chars_per_token: float = Field(default=3.0, gt=0.0)

    # Scheduling. Off-peak windows and pools are read from the text formats of
    # `setting_types/windows.py` and `setting_types/pools.py`.
    offpeak_windows: OffPeakWindows = (OffPeakWindow(22 * 60, 6 * 60),)
    pools: Pools = DEFAULT_POOLS
    autoscale_up_busy_share: float = Field(default=0.80, gt=0.0, le=1.0)
    autoscale_up_step: int = Field(default=2, ge=1)
    autoscale_max_backlog_step: int = Field(default=16, ge=1)
    autoscale_down_busy_share: float = Field(default=0.30, ge=0.0, lt=1.0)
    autoscale_down_step: int = Field(default=1, ge=1)
    autoscale_cooldown_s: float = Field(default=300.0, ge=0.0)
    autoscale_shrink_at_utilisation: float | None = Field(default=None, gt=0.0, le=1.0)
    autoscale_check_interval_s: float = Field(default=5.0, gt=0.0)
    release_rate_per_minute: int = Field(default=600, ge=1)
    # Provider batches (OpenAI Batch, Anthropic Message Batches) for released deferred work.
    batch_api: Literal["auto", "on", "off"] = "auto"
    batch_completion_window: str = "24h"
    batch_expected_s: int = Field(default=86_400, ge=1)  # how long a batch may take
    batch_deadline_margin_s: int = Field(default=600, ge=0)
    batch_on_expiry: Literal["standard", "batch"] = "standard"
    batch_max_requests: int = Field(default=50_000, ge=1, le=100_000)
    batch_max_bytes: int = Field(default=190 * 1024 * 1024, ge=1024)
    batch_poll_s: float = Field(default=60.0, gt=0.0)
    batch_poll_max_s: float = Field(default=600.0, gt=0.0)
    batch_hold_s: float = Field(default=300.0, gt=0.0)
    # Beat cadences (seconds), so tests and demos can run the schedule in seconds.
    beat_release_s: float = Field(default=60.0, gt=0.0)
    beat_batches_s: float = Field(default=30.0, gt=0.0)
    beat_maintenance_s: float = Field(default=60.0, gt=0.0)
    expected_run_s_default: int = Field(default=60, ge=0)

    # Cache. Policy tiers are read from comma lists of l1 (process memory), l2 (Redis), l3 (SQL).
    cache_enabled: bool = True
    cache_redis_db: int | None = Field(default=None, ge=0)  # default: the broker's db + 1
    cache_redis_timeout_s: float = Field(default=0.5, gt=0, le=30)
    cache_l1_max_entries: int = Field(default=10_000, ge=1)
    cache_l1_max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096)
    cache_compress_min_bytes: int = Field(default=4096, ge=0)  # smaller values: speed wins
    cache_agent_response_ttl_s: int = Field(default=3600, ge=1)
    cache_agent_response_tiers: CacheTiers = ("l1", "l2")
    cache_model_output_ttl_s: int = Field(default=7200, ge=1)
    cache_model_output_tiers: CacheTiers = ("l2", "l3")
    cache_conversation_context_ttl_s: int = Field(default=1800, ge=1)
    cache_conversation_context_tiers: CacheTiers = ("l1",)
    cache_tool_result_ttl_s: int = Field(default=600, ge=1)
    cache_tool_result_tiers: CacheTiers = ("l1", "l2")
    cache_single_flight_wait_s: float = Field(default=30.0, gt=0, le=3600)
    cache_tier_retry_s: float = Field(default=5.0, ge=0, le=3600)
    cache_stats_flush_s: float = Field(default=5.0, gt=0, le=3600)

    # Prometheus metrics served by each worker: 0 (default) serves none; tests set a free port.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_address: str = "127.0.0.1"

    # Time.
    timezone: str = "UTC"

    log_level: str = "INFO"

    # Clients (`AgentQueue.from_env()`, the CLI) scoped to one tenant's jobs; unset: operator.
    tenant: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")

    @field_validator("openai_base_url", "anthropic_base_url", "budget_webhook_url")
    @classmethod
    def _no_userinfo(cls, value: str | None) -> str | None:
        # httpx would send `user:password@` as Basic auth (instead of the configured key) and
        # every log line naming the URL would carry the password.
        if value is not None and has_userinfo(value):
            raise ValueError(
                "must not contain a user name or password (`user:password@host`); "
                "put the credential in the matching _API_KEY setting"
            )
        return value

    @field_validator("redis_url", "cache_redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def resolved_database_url(self) -> str:
        """The configured database URL, or an SQLite file under the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'agentqueue.db'}"

    @property
    def lease_renew_interval_s(self) -> float:
        """How often leases are renewed and expired ones looked for."""
        return self.job_lease_s / 3

    def repeat_allowed(self, agent_type: str, repeatable: bool | None) -> bool:
        """Whether a job may call the provider again after a call of unknown outcome."""
        if repeatable is not None:
            return repeatable
        listed = {name.strip() for name in self.no_repeat_agent_types.split(",")}
        return agent_type not in listed

    @property
    def effective_visibility_timeout_s(self) -> int:
        """Redis redelivers unacked messages after this; it must outlive the longest job."""
        return self.visibility_timeout_s or max(3600, self.job_time_limit_s * 4)

    @property
    def redis_configured(self) -> bool:
        """True when the operator chose a Redis URL rather than relying on the default."""
        return f"{ENV_PREFIX}REDIS_URL" in os.environ or self.redis_url != DEFAULT_REDIS_URL


def has_userinfo(url: str) -> bool:
    """True if `url` carries `user@` or `user:password@` before its host."""
    from urllib.parse import urlsplit

    try:
        return "@" in urlsplit(url).netloc
    except ValueError:
        return "@" in url


def load_settings(**overrides: object) -> Settings:
    """Read settings now; raise `SettingsError` naming every bad variable and the path into
    its value (`AGENTQUEUE_POOLS.batch.max is invalid: ...`). When all of them are in one
    field with its own code (pools, off-peak windows), the error is that field's."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        errors = exc.errors()
        fields = {str(error["loc"][0]) if error["loc"] else "?" for error in errors}
        coded = _CODED_ERRORS.get(fields.pop(), SettingsError) if len(fields) == 1 else None
        raise (coded or SettingsError)("; ".join(_problem(error) for error in errors)) from None
    except UndecodableSetting as exc:  # a JSON-valued variable holding something else
        found = re.search(r'field "(\w+)"', str(exc))
        variable = f"{ENV_PREFIX}{found.group(1).upper()}" if found else "a JSON setting"
        raise SettingsError(invalid(variable, "it is not JSON")) from None


def _problem(error: ErrorDetails) -> str:
    """One refused value, named by its variable: never a key, never a password."""
    field, *path = error["loc"] or ("?",)
    variable = f"{ENV_PREFIX}{str(field).upper()}"
    secret = str(field).endswith(_SECRET_SUFFIXES)
    return describe(field_name(variable, path), error, hide_value=secret)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
