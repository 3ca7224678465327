"""Scrub API keys out of any text a provider is about to log, raise or return."""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import SecretStr

REDACTED = "[redacted]"
# Credentials that look like keys even when we were not told them (a proxy may echo its own).
_KEY_SHAPES = re.compile(r"(?i)(bearer\s+)\S+|\b(sk-[A-Za-z0-9_\-]{8,})")


class Redactor:
    """Replaces each known secret, and anything shaped like a bearer token or `sk-` key."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        # Longest first, so a secret containing another is removed whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return _KEY_SHAPES.sub(lambda m: f"{m.group(1) or ''}{REDACTED}", text)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


def url_secrets(url: str) -> list[str]:
    """Parts of a URL that may be credentials: user name, password, query values."""
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url)
        found = [parts.username, parts.password]
        found += [value for _, value in parse_qsl(parts.query) if len(value) >= 4]
    except ValueError:
        return []
    return [s for s in found if s]


def secret_text(key: str | SecretStr | None) -> str | None:
    """The plain key, for the one place that needs it: the request header."""
    return key.get_secret_value() if isinstance(key, SecretStr) else key
