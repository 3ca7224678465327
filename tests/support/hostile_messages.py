"""Raw queue items a hostile or broken producer could push onto a kombu queue list in Redis."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from agentqueue.constants import TASK_RUN_JOB


def _body(args: list[Any]) -> str:
    payload = [args, {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    return base64.b64encode(json.dumps(payload).encode()).decode()


def celery_message(
    *,
    task: str = TASK_RUN_JOB,
    args: list[Any] | None = None,
    queue: str = "agentqueue.normal",
    headers: dict[str, Any] | None = None,
    body: Any = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A well-formed Celery protocol-2 message as kombu's Redis transport stores it."""
    task_id = uuid.uuid4().hex
    message: dict[str, Any] = {
        "body": _body(args if args is not None else [task_id, "a", "gpt-4o-mini"])
        if body is None
        else body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "ignore_result": None,
            **(headers or {}),
        },
        "properties": {
            "correlation_id": task_id,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    message.update(overrides)
    return message


def hostile_items() -> dict[str, str]:
    """Every kind of item named in issue 11, by name, as the raw string pushed onto the list."""
    bad_base64 = celery_message(body="!!! not base64 ***")
    headers_as_string = celery_message()
    headers_as_string["headers"] = "timelimit=x"
    return {
        "timelimit_x": json.dumps(celery_message(headers={"timelimit": "x"})),
        "timelimit_pair_x": json.dumps(celery_message(headers={"timelimit": ["x", "y"]})),
        "not_json": "this is {not json",
        "json_list": "[1, 2, 3]",
        "json_string": '"hello"',
        "bad_base64_body": json.dumps(bad_base64),
        "headers_as_string": json.dumps(headers_as_string),
        "properties_missing": json.dumps(
            {k: v for k, v in celery_message().items() if k != "properties"}
        ),
        "body_not_a_task_payload": json.dumps(
            celery_message(body=base64.b64encode(b'{"x": 1}').decode())
        ),
        "unknown_task": json.dumps(celery_message(task="agentqueue.no_such_task")),
        "eta_garbage": json.dumps(celery_message(headers={"eta": "not-a-date"})),
        "expires_garbage": json.dumps(celery_message(headers={"expires": "soon"})),
        "retries_string": json.dumps(celery_message(headers={"retries": "many"})),
    }
