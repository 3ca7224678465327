"""Budget scopes: `global`, `tenant:<id>`, `agent_type:<name>`; every job belongs to all three."""

from __future__ import annotations

import re

GLOBAL_SCOPE = "global"
_SCOPE = re.compile(r"^(global|(tenant|agent_type):[a-z0-9][a-z0-9_-]{0,63})$")


def scopes_for(tenant: str, agent_type: str) -> tuple[str, str, str]:
    """The scopes a job of `tenant` and `agent_type` is charged against."""
    return (GLOBAL_SCOPE, f"tenant:{tenant}", f"agent_type:{agent_type}")


def parse_scope(text: str) -> str:
    """Validate a scope name given by an operator.

    Raises:
        ValueError: naming the accepted forms.
    """
    scope = text.strip()
    if not _SCOPE.match(scope):
        raise ValueError(
            f"unknown scope {text!r}; use global, tenant:<id> or agent_type:<name> "
            "(lower-case letters, digits, '_' and '-')"
        )
    return scope
