"""HTTP shapes of the test server's batch APIs (OpenAI Files + Batch, Anthropic Message
Batches), over `BatchStore`. `route` returns (status, body, content type) or None."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from agentqueue.testing.batch_store import BatchStore, _Batch

Reply = tuple[int, bytes, str]
_JSON = "application/json"


def _json(status: int, body: Any) -> Reply:
    return status, json.dumps(body).encode(), _JSON


def _error(status: int, message: str) -> Reply:
    return _json(status, {"error": {"type": "invalid_request_error", "message": message}})


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def is_batch_path(path: str) -> bool:
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    parts = parts[1:] if parts[:1] == ["v1"] else parts
    return parts[:2] == ["messages", "batches"] or parts[:1] in (["files"], ["batches"])


def route(store: BatchStore, method: str, path: str, headers: Any, raw: bytes) -> Reply | None:
    """Serve a batch API request, or None when `path` is not one of them."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if parts[:1] == ["v1"]:
        parts = parts[1:]
    # Time for a test to kill a client mid-call: before anything is stored or answered.
    creating = method == "POST" and parts in (["files"], ["batches"], ["messages", "batches"])
    polling = method == "GET" and (
        (parts[:1] == ["batches"] and len(parts) == 2)
        or (parts[:2] == ["messages", "batches"] and len(parts) == 3)
    )
    if creating and parts != ["files"]:
        with store.lock:
            store.creates_started += 1
    delay = store.config.submit_delay_s if creating else store.config.poll_delay_s
    if delay and (creating or polling):
        time.sleep(delay)
    try:
        if parts[:2] == ["messages", "batches"]:
            return _anthropic(store, method, parts[2:], headers, raw)
        if parts[:1] == ["files"]:
            return _files(store, method, parts[1:], headers, raw)
        if parts[:1] == ["batches"]:
            return _openai(store, method, parts[1:], path, raw)
    except (ValueError, KeyError, TypeError) as exc:
        return _error(400, f"bad request: {exc}")
    return None


# OpenAI ------------------------------------------------------------------------------------


def _files(store: BatchStore, method: str, rest: list[str], headers: Any, raw: bytes) -> Reply:
    if method == "POST" and not rest:
        fields = _multipart(headers.get("content-type", ""), raw)
        if fields.get("purpose") != b"batch" or "file" not in fields:
            return _error(400, "purpose must be batch and a file is required")
        content = fields["file"]
        store.openai_lines_check(content)
        file_id = store.add_file(content)
        return _json(
            200,
            {"id": file_id, "object": "file", "bytes": len(content), "purpose": "batch"},
        )
    if method == "GET" and len(rest) == 2 and rest[1] == "content":
        stored = _output_file(store, rest[0])
        if stored is None:
            return _error(404, f"no file {rest[0]}")
        return 200, stored, "application/jsonl"
    return _error(404, "no such files route")


def _multipart(content_type: str, raw: bytes) -> dict[str, bytes]:
    message = BytesParser(policy=HTTP).parsebytes(
        b"content-type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload
    return fields


def _openai(store: BatchStore, method: str, rest: list[str], path: str, raw: bytes) -> Reply:
    if method == "POST" and not rest:
        body = json.loads(raw)
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return _error(400, "endpoint must be /v1/chat/completions, completion_window 24h")
        lines = store.openai_lines(str(body["input_file_id"]))
        models = {line["body"].get("model") for line in lines}
        if len(models) != 1:
            return _error(400, "one model per batch file")
        batch = store.create(
            "openai", lines, metadata=body.get("metadata"), input_file_id=body["input_file_id"]
        )
        return _json(200, _openai_batch(store.get(batch.id) or batch))
    if method == "GET" and not rest:
        found = store.listing()
        after = _query(path).get("after")
        if after:
            ids = [b.id for b in found]
            found = found[ids.index(after) + 1 :] if after in ids else []
        limit = int(_query(path).get("limit") or 20)
        page = found[:limit]
        return _json(
            200,
            {
                "object": "list",
                "data": [_openai_batch(b) for b in page if b.kind == "openai"],
                "has_more": len(found) > limit,
            },
        )
    cancel = rest[1:] == ["cancel"]
    found_batch = store.cancel(rest[0]) if cancel else store.get(rest[0], polled=True)
    if found_batch is None or found_batch.kind != "openai":
        return _error(404, f"no batch {rest[0]}")
    return _json(200, _openai_batch(found_batch))


def _query(path: str) -> dict[str, str]:
    _, _, query = path.partition("?")
    return dict(p.split("=", 1) for p in query.split("&") if "=" in p)


def _openai_batch(batch: _Batch) -> dict[str, Any]:
    done = [r for r in batch.results if r[1] is not None]
    failed = [r for r in batch.results if r[1] is None]
    status = batch.ended or ("cancelling" if batch.cancelled_at else "in_progress")
    ended = batch.ended is not None
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "errors": None,
        "input_file_id": batch.input_file_id,
        "completion_window": "24h",
        "status": status,
        "output_file_id": f"file-out-{batch.id}" if ended and done else None,
        "error_file_id": f"file-err-{batch.id}" if ended and failed else None,
        "created_at": int(batch.created),
        "cancelled_at": int(batch.cancelled_at) if batch.cancelled_at else None,
        "request_counts": {
            "total": len(batch.lines),
            "completed": len(done),
            "failed": len(failed),
        },
        "metadata": batch.metadata,
    }


def _output_file(store: BatchStore, file_id: str) -> bytes | None:
    for prefix, want_done in (("file-out-", True), ("file-err-", False)):
        if file_id.startswith(prefix):
            batch = store.get(file_id.removeprefix(prefix))
            if batch is None:
                return None
            lines = [
                _openai_line(custom_id, reply, failure)
                for custom_id, reply, failure in batch.results
                if (reply is not None) == want_done
            ]
            return ("\n".join(json.dumps(line) for line in lines) + "\n").encode()
    with store.lock:
        return store.files.get(file_id)


def _openai_line(custom_id: str, reply: dict[str, Any] | None, failure: str | None) -> Any:
    line: dict[str, Any] = {"id": f"batch_req_{custom_id}", "custom_id": custom_id}
    if reply is not None:
        line.update(response={"status_code": 200, "request_id": "req", "body": reply}, error=None)
    elif failure in ("expired", "cancelled"):
        code = "batch_expired" if failure == "expired" else "batch_cancelled"
        line.update(response=None, error={"code": code, "message": f"request {failure}"})
    else:
        status = 400 if failure and "FAIL-LINE-400" in failure else 500
        line.update(
            response={
                "status_code": status,
                "request_id": "req",
                "body": {"error": {"message": f"injected line failure {status}"}},
            },
            error=None,
        )
    return line


# Anthropic ---------------------------------------------------------------------------------


def _anthropic(store: BatchStore, method: str, rest: list[str], headers: Any, raw: bytes) -> Reply:
    if not headers.get("anthropic-version"):
        return _error(400, "anthropic-version: header is required")
    if method == "POST" and not rest:
        requests = json.loads(raw)["requests"]
        for request in requests:
            if set(request) != {"custom_id", "params"}:
                raise ValueError("each request needs exactly custom_id and params")
            if not isinstance(request["params"].get("max_tokens"), int):
                raise ValueError("params.max_tokens: field required")
        batch = store.create("anthropic", requests)
        return _json(200, _anthropic_batch(store.get(batch.id) or batch, headers))
    if method == "GET" and not rest:
        listed = [b for b in store.listing() if b.kind == "anthropic"]
        return _json(
            200, {"data": [_anthropic_batch(b, headers) for b in listed], "has_more": False}
        )
    cancel = rest[1:] == ["cancel"]
    found = store.cancel(rest[0]) if cancel else store.get(rest[0], polled=not rest[1:])
    if found is None or found.kind != "anthropic":
        return _error(404, f"no message batch {rest[0]}")
    if rest[1:] == ["results"]:
        if found.ended is None:
            return _error(400, "results are available once the batch has ended")
        lines = [_anthropic_line(*result) for result in found.results]
        return (
            200,
            ("\n".join(json.dumps(line) for line in lines) + "\n").encode(),
            "application/x-jsonl",
        )
    return _json(200, _anthropic_batch(found, headers))


def _anthropic_batch(batch: _Batch, headers: Any) -> dict[str, Any]:
    kinds = [_anthropic_line(*r)["result"]["type"] for r in batch.results]
    ended = batch.ended is not None
    status = "ended" if ended else ("canceling" if batch.cancelled_at else "in_progress")
    host = headers.get("host", "127.0.0.1")
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": {
            "processing": 0 if ended else len(batch.lines),
            "succeeded": kinds.count("succeeded"),
            "errored": kinds.count("errored"),
            "canceled": kinds.count("canceled"),
            "expired": kinds.count("expired"),
        },
        "created_at": _iso(batch.created),
        "cancel_initiated_at": _iso(batch.cancelled_at),
        "archived_at": None,
        "results_url": f"http://{host}/v1/messages/batches/{batch.id}/results" if ended else None,
    }


def _anthropic_line(custom_id: str, reply: dict[str, Any] | None, failure: str | None) -> Any:
    if reply is not None:
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": reply}}
    if failure == "expired":
        return {"custom_id": custom_id, "result": {"type": "expired"}}
    if failure == "cancelled":
        return {"custom_id": custom_id, "result": {"type": "canceled"}}
    kind = "invalid_request_error" if failure and "FAIL-LINE-400" in failure else "api_error"
    error = {"type": "error", "error": {"type": kind, "message": "injected line failure"}}
    return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}
