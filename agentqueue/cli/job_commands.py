"""`agentqueue submit|status|cancel`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from agentqueue.cli.render import print_results, status_panel
from agentqueue.jobs import JobValidationError
from agentqueue.progress import wait_with_progress
from agentqueue.settings import get_settings
from agentqueue.terminal import emit, wide_option

STATUS_WIDTH = 100  # off a terminal: a readable panel, not one line per paragraph of output


def _why(exc: Exception) -> str:
    """JSON's own position message; only the name of anything else (it may quote input)."""
    return str(exc) if isinstance(exc, json.JSONDecodeError) else type(exc).__name__


def read_job_file(path: Path) -> list[dict[str, Any]]:
    """A JSON object, a JSON array of objects, or JSON Lines (one object per line)."""
    try:
        raw = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise JobValidationError(
            f"{path}: cannot be read ({exc.strerror or type(exc).__name__})", code="unreadable_file"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JobValidationError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the job file as UTF-8",
            code="invalid_encoding",
        ) from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise JobValidationError(
                f"{path}: not valid JSON ({_why(exc)})", code="invalid_json"
            ) from None
        return list(data) if isinstance(data, list) else [data]
    jobs = []
    lines = [line for line in text.splitlines() if line.strip()]
    if stripped.startswith("{") and len(lines) > 1:
        try:  # one pretty-printed object
            return [json.loads(text)]
        except (ValueError, RecursionError):
            pass
    for number, line in enumerate(lines, start=1):
        try:
            jobs.append(json.loads(line))
        except (ValueError, RecursionError) as exc:
            raise JobValidationError(
                f"{path} line {number}: not valid JSON ({_why(exc)}); nothing was submitted",
                code="invalid_json",
            ) from None
    return jobs


def _requirements(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise click.BadParameter(
            f"{value!r} is not a JSON object, e.g. "
            """'{"min_quality": 0.7, "max_latency_ms": 1500, "max_cost_usd": "0.01"}'"""
        )
    return parsed


@click.command()
@click.option(
    "--file",
    "-f",
    "job_file",
    type=click.Path(path_type=Path, allow_dash=True),
    help="JSON, JSON array or JSONL file of jobs ('-' for stdin).",
)
@click.option("--agent-type", "-a", help="Agent type of a single job.")
@click.option(
    "--model",
    "-m",
    help="Model name, or 'auto' (the cheapest model meeting --requirements / --min-quality).",
)
@click.option(
    "--requirements",
    callback=_requirements,
    metavar="JSON",
    help="What 'auto' must meet, as a JSON object: min_quality (0-1), max_latency_ms, "
    "max_cost_usd, allow_fallback.",
)
@click.option(
    "--min-quality",
    type=click.FloatRange(0, 1),
    help="Shortcut for --requirements '{\"min_quality\": Q}' (merged into it).",
)
@click.option("--message", "-M", "messages", multiple=True, help="A user message (repeatable).")
@click.option("--system", help="A system message.")
@click.option(
    "--priority",
    "-p",
    type=click.Choice(["critical", "high", "normal", "low"]),
    default="normal",
    show_default=True,
    help="Queue; `low` outside the off-peak window waits for it.",
)
@click.option("--tenant", "-t", help="Tenant of the job (default: AGENTQUEUE_TENANT or 'default').")
@click.option("--temperature", type=float, help="Sampling temperature (0 makes it cacheable).")
@click.option("--max-tokens", type=int, help="Output bound (AGENTQUEUE_DEFAULT_MAX_TOKENS).")
@click.option("--seed", type=int, help="Sampling seed (makes the request cacheable).")
@click.option(
    "--fallback", "fallbacks", multiple=True, help="Model to fall back to (repeatable, in order)."
)
@click.option("--id", "job_id", help="Idempotency key for a single job.")
@click.option("--wait", "-w", is_flag=True, help="Wait for final results (with a progress bar).")
@click.option("--timeout", type=float, default=None, help="Seconds to wait with --wait.")
@click.option("--json", "as_json", is_flag=True, help="One JobResult JSON per line.")
@wide_option
def submit(
    job_file: Path | None,
    agent_type: str | None,
    model: str | None,
    requirements: dict[str, Any] | None,
    min_quality: float | None,
    messages: tuple[str, ...],
    system: str | None,
    priority: str,
    tenant: str | None,
    temperature: float | None,
    max_tokens: int | None,
    seed: int | None,
    fallbacks: tuple[str, ...],
    job_id: str | None,
    wait: bool,
    timeout: float | None,
    as_json: bool,
    wide: bool,
) -> None:
    """Submit one job from options, or many from a file; --wait prints results and totals."""
    from agentqueue.client import AgentQueue

    if job_file is not None:
        jobs = read_job_file(job_file)
    else:
        if not (agent_type and model and messages):
            raise click.UsageError("give --file, or --agent-type, --model and --message")
        chat = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": m} for m in messages
        ]
        params = {
            k: v
            for k, v in {"temperature": temperature, "max_tokens": max_tokens, "seed": seed}.items()
            if v is not None
        }
        job: dict[str, Any] = {
            "agent_type": agent_type,
            "model": model,
            "messages": chat,
            "priority": priority,
            "params": params,
        }
        if tenant:
            job["tenant"] = tenant
        if min_quality is not None:
            requirements = {**(requirements or {}), "min_quality": min_quality}
        if requirements is not None:
            job["requirements"] = requirements
        if fallbacks:
            job["fallbacks"] = list(fallbacks)
        if job_id:
            job["id"] = job_id
        jobs = [job]

    with AgentQueue(get_settings()) as queue:
        handles = queue.submit_many(jobs)
        ids = [h.id for h in handles]
        if not wait:
            for job_id_ in ids:
                current = queue.status(job_id_)
                if as_json:
                    click.echo(current.model_dump_json(exclude_none=True))
                else:
                    click.echo(f"{job_id_}\t{current.status.value}")
            return
        results = wait_with_progress(queue, ids, timeout=timeout)
    ordered = [results[i] for i in ids]
    if as_json:
        for result in ordered:
            click.echo(result.model_dump_json(exclude_none=True))
    else:
        print_results(ordered, wide=wide)
    if any(r.status.value != "succeeded" for r in ordered):
        sys.exit(1)


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the JobResult as JSON (exact cost).")
def status(job_id: str, as_json: bool) -> None:
    """Show the current record of a job (a panel; --json for the JobResult)."""
    from agentqueue.client import AgentQueue

    with AgentQueue(get_settings()) as queue:
        result = queue.status(job_id)
    if as_json:
        click.echo(result.model_dump_json(exclude_none=True))
        return
    emit(status_panel(result), max_width=STATUS_WIDTH)


@click.command()
@click.argument("job_id")
def cancel(job_id: str) -> None:
    """Cancel a job that has not started yet."""
    from agentqueue.client import AgentQueue

    with AgentQueue(get_settings()) as queue:
        cancelled = queue.cancel(job_id)
        state = queue.status(job_id).status.value
    click.echo(f"{job_id}\t{state}" + ("" if cancelled else "\t(not cancellable)"))
    if not cancelled:
        sys.exit(1)
