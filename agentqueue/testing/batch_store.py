"""The LLM test server's batch APIs in memory: OpenAI files + batches, Anthropic message batches.

A batch completes `completion_delay_s` after it is created, unless it expires first
(`expire_after_s`) or is cancelled. A batch that expires or is cancelled has answered its
first half of requests (in order); the rest were never run. A line whose last message
contains `FAIL-LINE-400` or `FAIL-LINE-500` fails with that status. Every request line
submitted is counted by its last message, so tests can prove nothing was submitted twice.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agentqueue.testing.llm_replies import ReplyMaker, text_of


@dataclass
class BatchConfig:
    completion_delay_s: float = 0.0
    expire_after_s: float | None = None
    submit_delay_s: float = 0.0  # before a batch or file is accepted (time to kill a client)
    poll_delay_s: float = 0.0  # before a batch status is answered


@dataclass
class _Batch:
    id: str
    kind: str  # "openai" | "anthropic"
    lines: list[dict[str, Any]]  # OpenAI: {custom_id, body}; Anthropic: {custom_id, params}
    created: float
    metadata: dict[str, Any] = field(default_factory=dict)
    input_file_id: str | None = None
    cancelled_at: float | None = None
    ended: str | None = None  # completed | expired | cancelled
    results: list[tuple[str, dict[str, Any] | None, str | None]] = field(default_factory=list)


class BatchStore:
    """Files, batches and their results; thread-safe, shared by the server's handler threads."""

    def __init__(self, replies: ReplyMaker) -> None:
        self.replies = replies
        self.config = BatchConfig()
        self.lock = threading.Lock()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, _Batch] = {}
        self.submitted_lines: Counter[str] = Counter()
        self.status_reads = 0  # batch status requests received (polls)
        self.creates_started = 0  # batch creations received (counted before any delay)

    def configure(self, **values: Any) -> BatchConfig:
        with self.lock:
            for name, value in values.items():
                if not hasattr(self.config, name):
                    raise ValueError(f"unknown batch setting {name!r}")
                setattr(self.config, name, None if value is None else float(value))
            return self.config

    def reset(self) -> None:
        with self.lock:
            self.config = BatchConfig()
            self.files.clear()
            self.batches.clear()
            self.submitted_lines.clear()
            self.status_reads = 0
            self.creates_started = 0

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "batches_created": len(self.batches),
                "batch_lines_submitted": sum(self.submitted_lines.values()),
                "batch_lines_by_text": dict(self.submitted_lines),
                "batch_status_reads": self.status_reads,
            }

    # Creation -------------------------------------------------------------------------------

    def add_file(self, content: bytes) -> str:
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        with self.lock:
            self.files[file_id] = content
        return file_id

    def create(
        self,
        kind: str,
        lines: list[dict[str, Any]],
        *,
        metadata: dict[str, Any] | None = None,
        input_file_id: str | None = None,
    ) -> _Batch:
        prefix = "batch_" if kind == "openai" else "msgbatch_"
        batch = _Batch(
            f"{prefix}{uuid.uuid4().hex[:24]}",
            kind,
            lines,
            time.time(),
            metadata or {},
            input_file_id,
        )
        with self.lock:
            self.batches[batch.id] = batch
            for line in lines:
                self.submitted_lines[self._text(batch, line)] += 1
        return batch

    def openai_lines(self, file_id: str) -> list[dict[str, Any]]:
        with self.lock:
            content = self.files.get(file_id)
        if content is None:
            raise KeyError(file_id)
        return self.openai_lines_check(content)

    @staticmethod
    def openai_lines_check(content: bytes) -> list[dict[str, Any]]:
        """The lines of a batch input file, refused unless each has the documented shape."""
        lines = [json.loads(line) for line in content.decode().splitlines() if line.strip()]
        for line in lines:
            if set(line) != {"custom_id", "method", "url", "body"} or line["method"] != "POST":
                raise ValueError("each line needs exactly custom_id, method POST, url and body")
        if len({line["custom_id"] for line in lines}) != len(lines):
            raise ValueError("custom_id values must be unique within a batch")
        return lines

    # Progress -------------------------------------------------------------------------------

    def get(self, batch_id: str, *, polled: bool = False) -> _Batch | None:
        with self.lock:
            self.status_reads += polled
            batch = self.batches.get(batch_id)
        if batch is not None:
            self._advance(batch)
        return batch

    def cancel(self, batch_id: str) -> _Batch | None:
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is not None and batch.ended is None and batch.cancelled_at is None:
                batch.cancelled_at = time.time()
        if batch is not None:
            self._advance(batch)
        return batch

    def listing(self) -> list[_Batch]:
        with self.lock:
            found = sorted(self.batches.values(), key=lambda b: b.created, reverse=True)
        for batch in found:
            self._advance(batch)
        return found

    def _advance(self, batch: _Batch) -> None:
        with self.lock:
            if batch.ended is not None:
                return
            now = time.time()
            config = self.config
            expiry = config.expire_after_s
            if batch.cancelled_at is not None:
                ended, ran = "cancelled", len(batch.lines) // 2
            elif (
                expiry is not None
                and now - batch.created >= expiry
                and (expiry < config.completion_delay_s)
            ):
                ended, ran = "expired", len(batch.lines) // 2
            elif now - batch.created >= config.completion_delay_s:
                ended, ran = "completed", len(batch.lines)
            else:
                return
            batch.ended = ended
        results: list[tuple[str, dict[str, Any] | None, str | None]] = []
        for index, line in enumerate(batch.lines):
            if index >= ran:
                results.append((line["custom_id"], None, ended))
                continue
            text = self._text(batch, line)
            if "FAIL-LINE-400" in text or "FAIL-LINE-500" in text:
                results.append((line["custom_id"], None, text))
                continue
            body = line["body"] if batch.kind == "openai" else line["params"]
            reply = (
                self.replies.openai(body)
                if batch.kind == "openai"
                else self.replies.anthropic(body)
            )
            results.append((line["custom_id"], reply, None))
        with self.lock:
            batch.results = results

    @staticmethod
    def _text(batch: _Batch, line: dict[str, Any]) -> str:
        body = line.get("body") if batch.kind == "openai" else line.get("params")
        messages = (body or {}).get("messages") or [{}]
        return text_of(messages[-1].get("content"))
