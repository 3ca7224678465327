"""The one typed `Settings` object, read from `AGENTQUEUE_*` environment variables and `.env`."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AGENTQUEUE_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class SettingsError(ValueError):
    """Raised at start-up when a setting is invalid; the message names the variable."""

    code = "invalid_setting"


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

    # Workers.
    worker_pool: Literal["threads", "gevent", "prefork", "solo"] = "threads"
    worker_concurrency: int = Field(default=64, ge=1, le=4096)
    worker_prefetch_multiplier: int = Field(default=4, ge=1)
    visibility_timeout_s: int = Field(default=0, ge=0)
    auto_migrate: bool = True

    # Time.
    timezone: str = "UTC"

    log_level: str = "INFO"

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
    def effective_visibility_timeout_s(self) -> int:
        """Redis redelivers unacked messages after this; it must outlive the longest job."""
        return self.visibility_timeout_s or max(3600, self.job_time_limit_s * 4)

    @property
    def redis_configured(self) -> bool:
        """True when the operator chose a Redis URL rather than relying on the default."""
        return f"{ENV_PREFIX}REDIS_URL" in os.environ or self.redis_url != DEFAULT_REDIS_URL


def load_settings(**overrides: object) -> Settings:
    """Read settings now; raise `SettingsError` naming the first bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            variable = f"{ENV_PREFIX}{field.upper()}"
            problems.append(f"{variable} is invalid: {error['msg']} (got {error.get('input')!r})")
        raise SettingsError("; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
