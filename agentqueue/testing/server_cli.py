"""`python -m agentqueue.testing.llm_server`: run the local LLM server until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading

from agentqueue.testing.latency import LatencyModel
from agentqueue.testing.llm_server import LLMTestServer


def main(argv: list[str] | None = None) -> None:
    """Run the server until SIGINT/SIGTERM; prints its URL first so a parent can read the port."""
    parser = argparse.ArgumentParser(prog="python -m agentqueue.testing.llm_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--latency-jitter-ms", type=float, default=0.0)
    parser.add_argument("--latency-percentiles", default="", help='e.g. "50:200,90:400,99:1200"')
    parser.add_argument("--fault", action="append", default=[], help="e.g. status=429,first=3")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--cache-min-tokens", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=None, help="comma-separated: the only models served")
    parser.add_argument(
        "--limit", action="append", default=[], help="MODEL:RPM[:TPM], e.g. gpt-4o-mini:1200"
    )
    parser.add_argument("--limit-burst-s", type=float, default=1.0)
    parser.add_argument("--outage", action="append", default=[], help="MODEL:SECONDS[:START_IN]")
    args = parser.parse_args(argv)
    server = LLMTestServer(
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        latency_percentiles=LatencyModel.parse_percentiles(args.latency_percentiles),
        faults=list(args.fault),
        api_key=args.api_key,
        cache_min_tokens=args.cache_min_tokens,
        seed=args.seed,
        models=args.models.split(",") if args.models else None,
        limits=dict(_parse_limit(spec) for spec in args.limit),
        limit_burst_s=args.limit_burst_s,
    )
    for spec in args.outage:
        model, seconds, *start = spec.split(":")
        server.add_outage(model, float(seconds), start_in_s=float(start[0]) if start else 0.0)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    with server:
        print(f"agentqueue LLM test server listening on {server.url}", flush=True)
        while not done.wait(0.5):
            pass


def _parse_limit(spec: str) -> tuple[str, tuple[int | None, int | None]]:
    model, rpm, *tpm = spec.split(":")
    return model, (int(rpm) if rpm else None, int(tpm[0]) if tpm and tpm[0] else None)
