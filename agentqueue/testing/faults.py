"""Fault rules for the LLM test server: which requests get 429/500, a late answer or none."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate

FAULT_HEADER = "x-test-fault"


@dataclass
class FaultRule:
    """When a request matches, answer it badly instead of normally.

    Written as a spec such as `status=429,retry_after=1,first=3` (the first three requests get
    429 with `Retry-After: 1`), `status=500,contains=BOOM` (every request whose last message
    contains BOOM gets 500), `delay=5` (sleep 5 s, past a client timeout, then answer normally)
    or `disconnect,model=flaky` (close the connection without a reply). Values may not contain
    commas; `retry_after=date+2` sends an HTTP date two seconds after the reply.
    """

    status: int | None = None
    retry_after: str | None = None
    delay_s: float = 0.0
    disconnect: bool = False
    first: int | None = None
    model: str | None = None
    contains: str | None = None
    hits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def parse(cls, spec: str) -> FaultRule:
        """A rule from its spec; raises ValueError naming the bad part."""
        rule = cls()
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, value = part.partition("=")
            name = name.strip().replace("-", "_")
            value = value.strip()
            if name == "status":
                rule.status = int(value)
            elif name == "retry_after":
                rule.retry_after = value
            elif name == "delay":
                rule.delay_s = float(value)
            elif name == "disconnect":
                rule.disconnect = True
            elif name == "first":
                rule.first = int(value)
            elif name == "model":
                rule.model = value
            elif name == "contains":
                rule.contains = value
            else:
                raise ValueError(f"unknown fault option {name!r} in {spec!r}")
        if rule.status is None and not rule.delay_s and not rule.disconnect:
            raise ValueError(f"fault {spec!r} does nothing: give status=, delay= or disconnect")
        return rule

    @property
    def spec(self) -> str:
        parts = []
        for name, value in (
            ("status", self.status),
            ("retry_after", self.retry_after),
            ("delay", self.delay_s or None),
            ("first", self.first),
            ("model", self.model),
            ("contains", self.contains),
        ):
            if value is not None:
                parts.append(f"{name}={value}")
        if self.disconnect:
            parts.append("disconnect")
        return ",".join(parts)

    def retry_after_header(self) -> str | None:
        """The Retry-After value to send now (`date+N` becomes an HTTP date N seconds ahead)."""
        if self.retry_after is None or not self.retry_after.startswith("date+"):
            return self.retry_after
        seconds = float(self.retry_after.removeprefix("date+"))
        return formatdate(time.time() + seconds, usegmt=True)

    def claim(self, model: str, last_text: str) -> bool:
        """True if this request gets the fault; counts it against `first`."""
        if self.model is not None and model != self.model:
            return False
        if self.contains is not None and self.contains not in last_text:
            return False
        with self._lock:
            if self.first is not None and self.hits >= self.first:
                return False
            self.hits += 1
            return True


class FaultBook:
    """The server's rules, checked in the order they were added; thread-safe."""

    def __init__(self, rules: list[FaultRule] | None = None) -> None:
        self._rules = list(rules or [])
        self._lock = threading.Lock()

    def add(self, rule: FaultRule | str) -> FaultRule:
        rule = FaultRule.parse(rule) if isinstance(rule, str) else rule
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def pick(self, model: str, last_text: str, header: str | None) -> FaultRule | None:
        """This request's fault: the `x-test-fault` header's, else the first rule claiming it."""
        if header:
            return FaultRule.parse(header)
        with self._lock:
            rules = list(self._rules)
        return next((r for r in rules if r.claim(model, last_text)), None)

    def describe(self) -> list[dict[str, object]]:
        with self._lock:
            return [{"spec": r.spec, "hits": r.hits} for r in self._rules]
