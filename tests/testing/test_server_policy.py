"""The LLM test server's served models, per-model rate limits and scripted outages."""

from __future__ import annotations

import time

import httpx

from agentqueue.testing.llm_server import LLMTestServer
from agentqueue.testing.server_limits import ServerRateLimits

BODY = {"model": "m-limited", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}


def test_a_model_over_its_rpm_gets_429_with_rate_limit_headers() -> None:
    """Given 120 RPM with one second of burst (2 requests), when 3 requests arrive at once,
    then two are served with x-ratelimit-* headers and the third gets 429 with Retry-After;
    an unlimited model is never refused and carries no such headers."""
    with LLMTestServer(limits={"m-limited": (120, None)}) as server, httpx.Client() as client:
        url = f"{server.base_url}/chat/completions"
        replies = [client.post(url, json=BODY) for _ in range(3)]
        free = client.post(url, json={**BODY, "model": "m-free"})
        time.sleep(0.6)  # half a second refills one request at 2/s
        again = client.post(url, json=BODY)

    assert [r.status_code for r in replies] == [200, 200, 429]
    assert replies[0].headers["x-ratelimit-limit-requests"] == "120"
    assert replies[1].headers["x-ratelimit-remaining-requests"] == "0"
    assert replies[2].headers["retry-after"] == "1"
    assert 0 < int(replies[2].headers["retry-after-ms"]) <= 500
    assert replies[2].json()["error"]["type"] == "rate_limit_error"
    assert free.status_code == 200 and "x-ratelimit-limit-requests" not in free.headers
    assert again.status_code == 200
    assert [a.fault for a in server.arrivals].count("rate_limited") == 1


def test_tokens_per_minute_count_prompt_and_output_bound() -> None:
    """At 6,000 TPM (100 tokens per second of burst) a 50-token request leaves 50; one larger
    than the whole bucket is served only from a full bucket (leaving a debt), after which even
    a small request waits about as long as the debt takes to refill."""
    limits = ServerRateLimits(burst_s=1.0)
    limits.set("m", tpm=6000)
    t = time.monotonic()
    small = limits.take("m", 50, now=t)
    assert small.allowed and small.headers["x-ratelimit-limit-tokens"] == "6000"
    assert small.headers["x-ratelimit-remaining-tokens"] == "50"
    assert not limits.take("m", 210, now=t).allowed  # needs a full bucket
    assert limits.take("m", 210, now=t + 0.5).allowed  # full again after 0.5 s
    refused = limits.take("m", 10, now=t + 0.5)
    assert not refused.allowed and 1.1 < refused.retry_after_s < 1.3


def test_outage_answers_503_then_recovers_and_only_served_models_are_listed() -> None:
    """Given a server serving two models with one of them down for 0.5 s, then that model
    answers 503 until the outage ends, the other keeps answering, an unserved model gets 404,
    and GET /v1/models lists exactly the two."""
    with LLMTestServer(models=["m-a", "m-b"]) as server, httpx.Client() as client:
        url = f"{server.base_url}/chat/completions"
        server.add_outage("m-a", 0.5)
        down = client.post(url, json={**BODY, "model": "m-a"})
        other = client.post(url, json={**BODY, "model": "m-b"})
        unserved = client.post(url, json={**BODY, "model": "m-c"})
        listed = client.get(f"{server.base_url}/models").json()
        time.sleep(0.6)
        back = client.post(url, json={**BODY, "model": "m-a"})
        scripted = client.post(
            f"{server.url}/_outage", json={"model": "m-b", "seconds": 5, "status": 502}
        )
        down_b = client.post(url, json={**BODY, "model": "m-b"})

    assert down.status_code == 503 and other.status_code == 200
    assert unserved.status_code == 404
    assert [m["id"] for m in listed["data"]] == ["m-a", "m-b"]
    assert back.status_code == 200
    assert scripted.status_code == 200 and down_b.status_code == 502


def test_a_server_without_a_model_list_serves_any_model_and_lists_none(
    llm_server: LLMTestServer,
) -> None:
    with httpx.Client() as client:
        listed = client.get(f"{llm_server.base_url}/models")
        served = client.post(f"{llm_server.base_url}/chat/completions", json=BODY)
    assert listed.status_code == 404 and served.status_code == 200
