"""prune_messages: a long conversation cut to a token budget, keeping what matters, in order."""

from __future__ import annotations

from typing import Any

from agentqueue.budget.context_pruning import PruneRules, prune_messages
from agentqueue.providers.simulated import count_tokens

MARKED = {
    37: "Remember: the customer's account id is 4471.",
    120: "This is important: never exceed the tenant budget.",
    251: "You MUST reply in French from now on.",
}


def _conversation(length: int = 500) -> list[dict[str, Any]]:
    """A system prompt, then alternating user/assistant turns of ~12 tokens; three are marked."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are the support agent for a queueing service."}
    ]
    for i in range(1, length):
        role = "user" if i % 2 else "assistant"
        text = MARKED.get(i, f"turn {i}: some ordinary chatter about queues and costs")
        messages.append({"role": role, "content": text})
    return messages


def _is_subsequence(kept: list[dict[str, Any]], original: list[dict[str, Any]]) -> bool:
    it = iter(original)
    return all(any(m is o for o in it) for m in kept)


def test_500_messages_pruned_to_budget_keep_system_marked_and_recent_in_order() -> None:
    """Given a 500-message conversation of ~8,000 tokens and a 1,000-token budget, when pruned,
    then it fits, the system message and the three marked messages are kept, the newest
    messages are kept as an unbroken tail, order is preserved, and the savings add up."""
    messages = _conversation()
    result = prune_messages(messages, 1000, count_tokens)

    kept_ids = {id(m) for m in result.messages}
    assert result.tokens_before > 5000
    assert result.fits and result.tokens_after <= 1000
    assert result.tokens_saved == result.tokens_before - result.tokens_after
    assert messages[0] is result.messages[0]
    assert all(id(messages[i]) in kept_ids for i in MARKED)
    assert _is_subsequence(result.messages, messages)

    tail_start = min(
        i for i in range(len(messages)) if all(id(m) in kept_ids for m in messages[i:])
    )
    assert len(messages) - tail_start >= 20  # the recent context is substantial
    assert messages[tail_start - 1] not in result.messages  # and it is a true cut
    assert set(result.dropped_indices) == set(range(len(messages))) - {
        i for i, m in enumerate(messages) if id(m) in kept_ids
    }
    assert sum(count_tokens(str(m["content"])) + 4 for m in result.messages) == result.tokens_after


def test_conversation_within_budget_is_untouched() -> None:
    messages = _conversation(10)
    result = prune_messages(messages, 10_000, count_tokens)
    assert result.messages == messages
    assert result.tokens_saved == 0 and result.dropped_indices == ()


def test_important_messages_cannot_crowd_out_recent_context() -> None:
    """Given 100 marked old messages that alone would fill the budget, then at most the
    configured share goes to them and the newest messages are still kept."""
    messages = _conversation(300)
    for m in messages[1:200]:
        m["content"] = "Remember this detail about queues and their costs please."
    result = prune_messages(messages, 800, count_tokens, PruneRules(important_share=0.5))
    assert result.fits
    assert all(m in result.messages for m in messages[-15:])
    recent_tokens = sum(
        count_tokens(m["content"]) + 4 for m in messages[200:] if m in result.messages
    )
    assert recent_tokens >= 800 * 0.4


def test_custom_markers_and_weights() -> None:
    """Given custom rules where only "PIN" marks a message, then "remember" no longer does."""
    messages = _conversation(200)
    messages[10]["content"] = "PIN the tenant id is 9"
    rules = PruneRules(markers=("pin",), keep_last=2)
    result = prune_messages(messages, 300, count_tokens, rules)
    assert messages[10] in result.messages
    assert messages[37] not in result.messages  # "Remember:" is not a marker under these rules
    assert messages[-2] in result.messages and messages[-1] in result.messages


def test_tool_call_and_its_replies_are_kept_or_dropped_together() -> None:
    """Given an old assistant tool call with its tool reply, then both go or both stay, so the
    pruned conversation never holds an orphan tool reply."""
    messages = _conversation(120)
    messages[50] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        ],
    }
    messages[51] = {"role": "tool", "tool_call_id": "c1", "content": "IMPORTANT: result 42"}
    result = prune_messages(messages, 400, count_tokens)
    assert (messages[50] in result.messages) == (messages[51] in result.messages)
    assert messages[51] in result.messages  # the marked reply carries its call with it


def test_budget_smaller_than_what_must_stay_reports_not_fitting() -> None:
    """Given a budget smaller than the system message plus the last turn, then those are still
    kept and the result says it does not fit (the caller decides)."""
    messages = _conversation(50)
    result = prune_messages(messages, 5, count_tokens)
    assert result.messages == [messages[0], messages[-1]]
    assert not result.fits
