"""`AgentJob` (what an application asks for), `JobResult` (what it gets back), validation."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from agentqueue.constants import (
    DEADLINE_YEARS,
    MAX_FALLBACKS,
    MAX_JOB_ID_LENGTH,
    MAX_METADATA_BYTES,
)
from agentqueue.errors import AgentQueueError
from agentqueue.job_input import describe, first_key, safe_field, structure_problem
from agentqueue.money import exact_usd
from agentqueue.strict import StrictModel
from agentqueue.usage import TokenUsage

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
JobId = Annotated[
    str, StringConstraints(pattern=rf"^[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_JOB_ID_LENGTH - 1}}}$")
]
ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")]


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class JobStatus(StrEnum):
    QUEUED = "queued"
    DEFERRED = "deferred"
    RUNNING = "running"
    BATCHED = "batched"  # waiting in a provider batch (OpenAI Batch, Anthropic Message Batches)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.REJECTED, JobStatus.CANCELLED}
)


class JobValidationError(AgentQueueError):
    """A job refused at submit; `code` is stable, `field` names the offending part."""

    code = "invalid_job"

    def __init__(self, message: str, *, code: str = "invalid_job", field: str = "") -> None:
        super().__init__(message, code=code)
        self.field = field


class Message(StrictModel):
    """One OpenAI-style chat message."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str = Field(max_length=2_000_000)
    name: str | None = Field(default=None, max_length=64)


class Params(StrictModel):
    """Sampling parameters; every one of them changes the output and so the cache key."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0, allow_inf_nan=False)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, allow_inf_nan=False)
    stop: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=4
    )
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)


class Requirements(StrictModel):
    """What `model="auto"` must satisfy."""

    min_quality: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    max_latency_ms: int | None = Field(default=None, ge=1)
    max_cost_usd: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    allow_fallback: bool = False


class CacheControl(StrictModel):
    """Per-job cache choices: `default`, `no-cache` (do not read) or `no-store` (neither)."""

    mode: Literal["default", "no-cache", "no-store", "force"] = "default"
    ttl_s: int | None = Field(default=None, ge=1, le=30 * 86_400)
    policy: Literal["agent_response", "model_output", "conversation_context", "tool_result"] = (
        "agent_response"
    )


def _new_job_id() -> str:
    return uuid.uuid4().hex


class AgentJob(StrictModel):
    """One agent request. `id` is an idempotency key: submitting it twice runs it once."""

    id: JobId = Field(default_factory=_new_job_id)
    agent_type: Slug
    model: ModelName
    requirements: Requirements | None = None
    # Models to try, in order, when the chosen one is down or rate limited past the wait bound.
    fallbacks: list[ModelName] = Field(default_factory=list, max_length=MAX_FALLBACKS)
    messages: list[Message] = Field(min_length=1, max_length=10_000)
    params: Params = Field(default_factory=Params)
    priority: Priority = Priority.NORMAL
    tenant: Slug = "default"
    deadline: datetime | None = None
    cache: CacheControl = Field(default_factory=CacheControl)
    metadata: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    # May the provider be called again when a crash left it unknown whether a call was made
    # (and paid)? None: the agent type's setting (AGENTQUEUE_NO_REPEAT_AGENT_TYPES), else yes.
    repeatable: bool | None = None

    @field_validator("deadline")
    @classmethod
    def _aware_deadline(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return value
        if value.tzinfo is None:
            raise ValueError("deadline must include a time zone, e.g. 2026-01-01T00:00:00Z")
        first, last = DEADLINE_YEARS
        try:
            year = value.astimezone(UTC).year
        except (OverflowError, ValueError):
            year = 0
        if not first <= year < last:
            raise ValueError(f"deadline must be between the years {first} and {last} (UTC)")
        return value

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes as JSON")
        return value

    @model_validator(mode="after")
    def _auto_needs_requirements(self) -> AgentJob:
        if self.model == "auto" and self.requirements is None:
            raise ValueError("model 'auto' needs requirements (min_quality, max_latency_ms, ...)")
        return self

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @property
    def named_models(self) -> list[tuple[str, str]]:
        """Every model the job names, with the field naming it (for checks at submit)."""
        named = [("model", self.model)]
        named += [(f"fallbacks.{i}", m) for i, m in enumerate(self.fallbacks)]
        return named


_LOCATION_CODES = {
    "id": "invalid_job_id",
    "agent_type": "invalid_agent_type",
    "model": "invalid_model",
    "requirements": "invalid_requirements",
    "fallbacks": "invalid_fallbacks",
    "messages": "invalid_messages",
    "params": "invalid_params",
    "priority": "invalid_priority",
    "tenant": "invalid_tenant",
    "deadline": "invalid_deadline",
    "cache": "invalid_cache_control",
    "metadata": "invalid_metadata",
}


def _code_for(error: Any) -> tuple[str, str]:
    loc = [str(part) for part in error.get("loc", ())]
    field = ".".join(loc)
    if error.get("type") == "extra_forbidden":
        return "unknown_field", field
    if error.get("type") == "missing":
        return "missing_field", field
    if not loc:
        return "invalid_job", field
    return _LOCATION_CODES.get(loc[0], "invalid_job"), field


def parse_job(data: Any, *, max_bytes: int) -> AgentJob:
    """Validate raw input (a dict, JSON text or an `AgentJob`) into an `AgentJob`.

    Raises:
        JobValidationError: with a stable code (`job_too_large`, `missing_field`, ...).
    """
    if isinstance(data, AgentJob):
        _refuse_structure(data.model_dump())
        raw = data.to_json()
        if len(raw.encode()) > max_bytes:
            raise _too_large(len(raw.encode()), max_bytes)
        return data
    if isinstance(data, str | bytes):
        if len(data) > max_bytes:
            raise _too_large(len(data), max_bytes)
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise JobValidationError(
                f"the job is not valid JSON ({safe_field(str(exc))}); send one JSON object per job",
                code="invalid_json",
            ) from None
        except RecursionError:
            raise JobValidationError(
                "the job is nested too deeply to be a job", code="invalid_json"
            ) from None
    if not isinstance(data, dict):
        raise JobValidationError(
            f"a job must be a JSON object, got {type(data).__name__}", code="not_an_object"
        )
    _refuse_structure(data)
    size = len(json.dumps(data, default=str).encode())
    if size > max_bytes:
        raise _too_large(size, max_bytes)
    if data.get("model") == "auto" and "requirements" not in data:
        raise JobValidationError(
            "model 'auto' needs requirements (min_quality, max_latency_ms or max_cost_usd)",
            code="missing_requirements",
            field="requirements",
        )
    try:
        return AgentJob.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        code, field = _code_for(first)
        raise JobValidationError(
            safe_field(f"{field or 'job'}: {first['msg']}"), code=code, field=safe_field(field)
        ) from None


def _refuse_structure(data: object) -> None:
    problem = structure_problem(data)
    if problem is not None:
        raise JobValidationError(
            describe(problem),
            code=_LOCATION_CODES.get(first_key(problem[0]), "invalid_job"),
            field=safe_field(problem[0]),
        )


def _too_large(size: int, limit: int) -> JobValidationError:
    return JobValidationError(
        f"the job is {size} bytes, over the {limit}-byte limit "
        "(AGENTQUEUE_MAX_JOB_BYTES); send less context",
        code="job_too_large",
    )


class ErrorInfo(BaseModel):
    code: str
    message: str


class JobResult(BaseModel):
    """The final (or current) record of a job, as the application sees it (JSON-safe)."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    status: JobStatus
    output: str | None = None
    model: str | None = None
    provider: str | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: str = "0"
    cache_tier: str | None = None
    error: ErrorInfo | None = None
    agent_type: str | None = None
    tenant: str | None = None
    priority: Priority | None = None
    attempts: int = 0
    model_reason: str | None = None
    budget_action: str | None = None
    service_tier: str | None = None
    context_tokens_saved: int = 0
    release_after: datetime | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @field_serializer("usage")
    def _usage_as_published(self, usage: TokenUsage) -> dict[str, int]:
        # Results have always shown these two counts; the cached share stays in the ledger.
        return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}

    @property
    def cost(self) -> Decimal:
        return Decimal(self.cost_usd)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @field_validator("cost_usd")
    @classmethod
    def _plain_decimal_cost(cls, value: str) -> str:
        # A ledger Decimal's str() can be "0E-10"; results carry the exact amount, plainly.
        try:
            return exact_usd(Decimal(value))
        except ArithmeticError:
            raise ValueError(f"cost_usd {value!r} is not a decimal amount") from None


def utcnow() -> datetime:
    return datetime.now(UTC)
