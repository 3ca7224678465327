"""The local LLM test server: concurrency, counters, faults, latency, both ways of running it."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time

import httpx
import pytest

from agentqueue.providers.base import ProviderRequest
from agentqueue.providers.simulated import SimulatedProvider
from agentqueue.testing.faults import FaultRule
from agentqueue.testing.latency import LatencyModel
from agentqueue.testing.llm_server import LLMTestServer

BODY = {
    "model": "gpt-test",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name three costs of a queue."},
    ],
    "max_tokens": 32,
    "temperature": 0,
}


def test_128_concurrent_slow_requests_overlap_instead_of_queueing() -> None:
    """Given 200 ms latency, when 128 clients each send one request at the same moment on their
    own connection, then every request takes well under 4x the latency (serialised, the last
    would take 25 s) and the server saw nearly all of them in flight together."""
    clients = 128
    barrier = threading.Barrier(clients)
    durations: list[float] = []
    statuses: list[int] = []

    def one(url: str) -> None:
        with httpx.Client(timeout=10) as client:
            barrier.wait()
            started = time.monotonic()
            statuses.append(client.post(url, json=BODY).status_code)
            durations.append(time.monotonic() - started)

    with LLMTestServer(latency_ms=200) as server:
        threads = [
            threading.Thread(target=one, args=(f"{server.base_url}/chat/completions",))
            for _ in range(clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = server.stats()

    assert statuses == [200] * clients
    assert stats["connections_accepted"] == clients
    # A serialising server would show 1; under load on 2 cores not all 128 overlap exactly.
    assert stats["max_in_flight"] >= clients * 0.4
    assert min(durations) >= 0.2
    assert max(durations) < 6.0  # one at a time would take 25.6 s


def test_keep_alive_reuses_one_connection_for_many_requests(llm_server: LLMTestServer) -> None:
    """Given one HTTP/1.1 client, when it sends 20 requests, then the server accepted one TCP
    connection and served 20 requests, and /_stats says the same."""
    with httpx.Client(base_url=llm_server.base_url) as client:
        for _ in range(20):
            assert client.post("/chat/completions", json=BODY).status_code == 200
        stats = client.get(f"{llm_server.url}/_stats").json()
    assert llm_server.connections_accepted == stats["connections_accepted"] == 1
    assert llm_server.requests_served == stats["requests_served"] == 20
    assert len(stats["arrivals"]) == 20


def test_replies_are_deterministic_with_honest_usage(llm_server: LLMTestServer) -> None:
    """Given the same body twice, then the same text; usage counts the messages with the
    simulated provider's tokenizer."""
    with httpx.Client(base_url=llm_server.base_url) as client:
        first = client.post("/chat/completions", json=BODY).json()
        second = client.post("/chat/completions", json=BODY).json()
    expected = SimulatedProvider().complete(
        ProviderRequest(model="gpt-test", messages=BODY["messages"], max_tokens=32, temperature=0)
    )
    assert first["choices"] == second["choices"]
    assert first["choices"][0]["message"]["content"] == expected.output
    assert first["usage"]["prompt_tokens"] == expected.usage.input_tokens
    assert first["usage"]["completion_tokens"] == expected.usage.output_tokens


def test_fault_header_and_rules(llm_server: LLMTestServer) -> None:
    """Given a rule for a model, a rule for a phrase, and a per-request header, then each
    request gets exactly the fault meant for it, and `first` limits how often."""
    llm_server.add_fault("status=429,retry_after=1,first=2,model=busy-model")
    llm_server.add_fault("status=500,contains=BOOM")
    url = f"{llm_server.base_url}/chat/completions"
    busy = {**BODY, "model": "busy-model"}
    boom = {**BODY, "messages": [{"role": "user", "content": "say BOOM"}]}
    with httpx.Client() as client:
        busy_statuses = [client.post(url, json=busy).status_code for _ in range(3)]
        limited = client.post(url, json=busy)
        boom_statuses = [client.post(url, json=boom).status_code for _ in range(3)]
        headed = client.post(url, json=BODY, headers={"x-test-fault": "status=503"})
    assert busy_statuses[:2] == [429, 429] and busy_statuses[2] == 200
    assert limited.status_code == 200
    assert boom_statuses == [500, 500, 500]
    assert headed.status_code == 503


def test_retry_after_header_is_sent(llm_server: LLMTestServer) -> None:
    llm_server.add_fault("status=429,retry_after=7")
    reply = httpx.post(f"{llm_server.base_url}/chat/completions", json=BODY)
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "7"
    assert reply.json()["error"]["type"] == "rate_limit_error"


def test_bad_requests_are_refused(llm_server: LLMTestServer) -> None:
    """Given malformed bodies, then 400, as a real API would answer."""
    url = f"{llm_server.base_url}/chat/completions"
    assert httpx.post(url, content=b"not json").status_code == 400
    assert httpx.post(url, json={"model": "m", "messages": []}).status_code == 400
    no_version = httpx.post(f"{llm_server.url}/v1/messages", json={**BODY})
    assert no_version.status_code == 400
    assert "anthropic-version" in no_version.json()["error"]["message"]


def test_reset_zeroes_counters_and_forgets_faults(llm_server: LLMTestServer) -> None:
    llm_server.add_fault("status=500")
    httpx.post(f"{llm_server.base_url}/chat/completions", json=BODY)
    assert httpx.post(f"{llm_server.url}/_reset").status_code == 200
    reply = httpx.post(f"{llm_server.base_url}/chat/completions", json=BODY)
    assert reply.status_code == 200
    assert llm_server.requests_received == 1


def test_runs_as_a_subprocess_with_cli_faults_and_latency() -> None:
    """Given `python -m agentqueue.testing.llm_server --port 0 --latency-ms 100 --fault ...`,
    then it prints its URL, answers with the latency, applies the fault, reports /_stats, and
    exits on SIGTERM."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentqueue.testing.llm_server",
            "--port",
            "0",
            "--latency-ms",
            "100",
            "--fault",
            "status=500,first=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url) as client:
            faulted = client.post("/v1/chat/completions", json=BODY)
            started = time.monotonic()
            ok = client.post("/v1/chat/completions", json=BODY)
            elapsed = time.monotonic() - started
            client.post("/_faults", json={"spec": "status=429,retry_after=2"})
            limited = client.post("/v1/chat/completions", json=BODY)
            stats = client.get("/_stats").json()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert faulted.status_code == 500
    assert ok.status_code == 200 and elapsed >= 0.1
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    assert stats["requests_served"] == 3 and stats["connections_accepted"] == 1
    assert [f["hits"] for f in stats["faults"]] == [1, 1]
    assert process.returncode == 0, stderr
    assert json.dumps(stats)  # plain JSON all the way down


def test_latency_model_fixed_jitter_and_percentiles() -> None:
    """Given fixed + jitter, draws stay in range; given a percentile table, its median and
    p90 land near the table's values."""
    rng = random.Random(1)
    jittery = LatencyModel(latency_ms=200, jitter_ms=50)
    assert all(0.15 <= jittery.sample_s(rng) <= 0.25 for _ in range(500))
    table = LatencyModel(percentiles=LatencyModel.parse_percentiles("0:100,50:200,90:400,100:1000"))
    draws = sorted(table.sample_s(rng) for _ in range(4000))
    assert draws[2000] == pytest.approx(0.2, abs=0.02)
    assert draws[3600] == pytest.approx(0.4, abs=0.04)
    assert draws[0] >= 0.1 and draws[-1] <= 1.0
    with pytest.raises(ValueError):
        LatencyModel(percentiles=((50, 300), (90, 200)))


def test_fault_specs_round_trip_and_reject_typos() -> None:
    rule = FaultRule.parse("status=429, retry_after=1, first=3, model=m")
    assert rule.spec == "status=429,retry_after=1,first=3,model=m"
    assert FaultRule.parse("delay=5").delay_s == 5.0
    assert FaultRule.parse("disconnect,contains=X").disconnect
    with pytest.raises(ValueError):
        FaultRule.parse("stauts=500")
    with pytest.raises(ValueError):
        FaultRule.parse("first=2")
