"""Prune a long conversation to a token budget before its cost is estimated (a pure function).

Kept, in this order of precedence: system messages; the newest `keep_last` messages (the turn
being answered); older messages that score as important (role, explicit markers such as
"remember", length), using at most `important_share` of what budget is left so they never crowd
out recent context; then the most recent messages, walking back from the end until the next one
does not fit; then any important message that still fits. The kept messages stay in their
original order. An assistant message with `tool_calls` and the tool replies that follow it are
kept or dropped together, since an API rejects a tool reply without its call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_DEFAULT_ROLE_WEIGHTS: Mapping[str, float] = {"user": 1.0, "assistant": 0.5, "tool": 0.25}
_DEFAULT_MARKERS = ("remember", "important", "must", "don't forget", "do not forget")


@dataclass(frozen=True)
class PruneRules:
    """What counts as important and what is always kept; every weight is configurable.

    A message's score is `role_weights[role]`, plus `marker_weight` if its text contains one of
    `markers` (whole words, any case), plus up to `length_weight` growing with its length until
    `length_saturation_tokens`. It is important when the score reaches `important_threshold`;
    with the defaults, only a marker makes a message important.
    """

    keep_system: bool = True
    keep_last: int = 1
    message_overhead_tokens: int = 4
    role_weights: Mapping[str, float] = field(default_factory=lambda: dict(_DEFAULT_ROLE_WEIGHTS))
    markers: tuple[str, ...] = _DEFAULT_MARKERS
    marker_weight: float = 2.0
    length_weight: float = 0.5
    length_saturation_tokens: int = 200
    important_threshold: float = 2.0
    important_share: float = 0.5

    def marker_pattern(self) -> re.Pattern[str] | None:
        if not self.markers:
            return None
        alternatives = "|".join(re.escape(m) for m in self.markers)
        return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class PruneResult:
    """The kept messages (the same dicts, original order) and what pruning saved."""

    messages: list[dict[str, Any]]
    tokens_before: int
    tokens_after: int
    tokens_saved: int
    dropped_indices: tuple[int, ...]
    budget_tokens: int

    @property
    def fits(self) -> bool:
        """False when even the messages that must be kept exceed the budget."""
        return self.tokens_after <= self.budget_tokens


@dataclass
class _Unit:
    """Messages kept or dropped together (one message, or a tool call with its replies)."""

    indices: list[int]
    cost: int
    score: float
    is_system: bool


def message_text(message: Mapping[str, Any]) -> str:
    """Everything in a message that the model reads as tokens: content text and tool calls."""
    content = message.get("content")
    if isinstance(content, list):
        text = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    else:
        text = "" if content is None else str(content)
    if message.get("tool_calls"):
        text += " " + json.dumps(message["tool_calls"], sort_keys=True)
    return text


def prune_messages(
    messages: list[dict[str, Any]],
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    rules: PruneRules | None = None,
) -> PruneResult:
    """Keep what matters of `messages` within `budget_tokens` (see the module docstring).

    `count_tokens` is the target model's tokenizer (or an estimate); each message also costs
    `rules.message_overhead_tokens`. Never raises for an over-tight budget: the result's `fits`
    is then False and the caller decides.
    """
    rules = rules or PruneRules()
    texts = [message_text(m) for m in messages]
    costs = [count_tokens(t) + rules.message_overhead_tokens for t in texts]
    tokens_before = sum(costs)
    if tokens_before <= budget_tokens:
        return PruneResult(list(messages), tokens_before, tokens_before, 0, (), budget_tokens)

    units = _units(messages, texts, costs, rules)
    kept: set[int] = set()
    used = 0

    def take(unit: _Unit) -> None:
        nonlocal used
        kept.update(unit.indices)
        used += unit.cost

    def room_for(unit: _Unit, limit: float = budget_tokens) -> bool:
        return unit.indices[0] not in kept and used + unit.cost <= limit

    for unit in units:
        if rules.keep_system and unit.is_system:
            take(unit)
    if rules.keep_last > 0:
        for unit in [u for u in units if not u.is_system][-rules.keep_last :]:
            take(unit)

    important = sorted(
        (u for u in units if u.score >= rules.important_threshold and u.indices[0] not in kept),
        key=lambda u: (-u.score, -u.indices[0]),
    )
    important_limit = used + max(0, budget_tokens - used) * rules.important_share
    for unit in important:
        if room_for(unit, important_limit):
            take(unit)
    for unit in reversed(units):
        if unit.indices[0] in kept:
            continue
        if not room_for(unit):
            break
        take(unit)
    for unit in important:
        if room_for(unit):
            take(unit)

    kept_messages = [m for i, m in enumerate(messages) if i in kept]
    dropped = tuple(i for i in range(len(messages)) if i not in kept)
    return PruneResult(
        kept_messages, tokens_before, used, tokens_before - used, dropped, budget_tokens
    )


def _units(
    messages: Sequence[Mapping[str, Any]],
    texts: Sequence[str],
    costs: Sequence[int],
    rules: PruneRules,
) -> list[_Unit]:
    """Group messages into units and score each (a group scores as its best member)."""
    pattern = rules.marker_pattern()
    units: list[_Unit] = []
    for i, message in enumerate(messages):
        role = str(message.get("role", "user"))
        score = rules.role_weights.get(role, 0.0)
        if pattern is not None and pattern.search(texts[i]):
            score += rules.marker_weight
        if rules.length_saturation_tokens > 0:
            score += rules.length_weight * min(1.0, costs[i] / rules.length_saturation_tokens)
        joins_call = role == "tool" and units and _is_open_tool_call(messages, units[-1])
        if joins_call:
            units[-1].indices.append(i)
            units[-1].cost += costs[i]
            units[-1].score = max(units[-1].score, score)
        else:
            units.append(_Unit([i], costs[i], score, role == "system"))
    return units


def _is_open_tool_call(messages: Sequence[Mapping[str, Any]], unit: _Unit) -> bool:
    """True if `unit` starts with an assistant tool call (so following tool replies join it)."""
    first = messages[unit.indices[0]]
    return first.get("role") == "assistant" and bool(first.get("tool_calls"))
