"""The demo's sample workload: several agent types, models and priorities, some repeats."""

from __future__ import annotations

import random
from typing import Any

AGENTS = {
    "support-bot": ("gpt-4o-mini", "You answer customer questions briefly."),
    "summarizer": ("gpt-4.1-nano", "You summarise documents in three sentences."),
    "code-reviewer": ("gpt-4.1-mini", "You review code diffs for bugs."),
    "researcher": ("gpt-4o", "You research a topic and cite sources."),
    "digest-writer": ("gpt-5-mini", "You write tonight's digest of the day's tickets."),
}
# Work that can wait: always `low`, so outside the off-peak window it is deferred, and its
# model has a flex price, so the release shows a real saving.
OFFPEAK_AGENTS = frozenset({"digest-writer"})
PRIORITIES = ("critical", "high", "normal", "normal", "normal", "low")
TOPICS = (
    "refund policy",
    "shipping delay",
    "password reset",
    "invoice copy",
    "API limits",
    "quarterly report",
    "release notes",
    "memory leak",
    "race condition",
    "pricing page",
)


def sample_jobs(count: int = 120, *, seed: int = 7, run_tag: str = "") -> list[dict[str, Any]]:
    """`count` jobs; about one in five repeats an earlier request exactly (a cache candidate)."""
    rng = random.Random(seed)
    jobs: list[dict[str, Any]] = []
    for index in range(count):
        if jobs and rng.random() < 0.2:
            earlier = dict(rng.choice(jobs))
            earlier.pop("id", None)
            jobs.append(earlier)
            continue
        agent_type = rng.choice(list(AGENTS))
        model, system = AGENTS[agent_type]
        topic = rng.choice(TOPICS)
        jobs.append(
            {
                "agent_type": agent_type,
                "model": model,
                "priority": "low" if agent_type in OFFPEAK_AGENTS else rng.choice(PRIORITIES),
                "tenant": rng.choice(("acme", "globex")),
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": f"Request {index}{run_tag}: help with {topic}."},
                ],
                "params": {"temperature": 0, "max_tokens": 64},
            }
        )
    return jobs
