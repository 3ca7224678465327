"""The shipped model catalog and the operator's catalog file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentqueue.budget.catalog import load_catalog
from agentqueue.budget.errors import InvalidBudgetFile
from agentqueue.budget.pricing import PriceBook


def test_every_shipped_model_is_priced_by_genai_prices() -> None:
    """Given the shipped catalog, then each model has a real price from the bundled data and
    the provider genai-prices knows it under (so auto never picks an unpriced model)."""
    catalog = load_catalog(None)
    book = PriceBook()
    providers = set()
    for entry in catalog.models:
        priced = book.price(entry.id, provider=entry.provider)
        assert priced.provider == entry.provider
        assert priced.cost(1000, 1000) > 0
        providers.add(entry.provider)
    assert {"openai", "anthropic"} <= providers
    assert len(catalog) >= 7
    assert catalog.get("GPT-4O-MINI") is not None


def test_catalog_file_replaces_the_shipped_list(tmp_path: Path) -> None:
    """Given a catalog file without include_defaults, then only its models are in the catalog."""
    path = tmp_path / "catalog.toml"
    path.write_text(
        '[[models]]\nid = "llama-local"\nprovider = "vllm"\nquality = 0.5\nlatency_ms = 300\n'
        "context_window = 8192\nmax_output_tokens = 2048\n"
    )
    catalog = load_catalog(path)
    assert [m.id for m in catalog.models] == ["llama-local"]


def test_catalog_file_can_extend_and_override_the_shipped_list(tmp_path: Path) -> None:
    """Given include_defaults and an entry re-scoring gpt-4o, then the shipped models stay and
    gpt-4o takes the file's values."""
    path = tmp_path / "catalog.json"
    entry = {
        "id": "gpt-4o",
        "provider": "openai",
        "quality": 0.99,
        "latency_ms": 10,
        "context_window": 128000,
        "max_output_tokens": 100,
    }
    path.write_text(json.dumps({"include_defaults": True, "models": [entry]}))
    catalog = load_catalog(path)
    assert len(catalog) == len(load_catalog(None))
    gpt_4o = catalog.get("gpt-4o")
    assert gpt_4o is not None and gpt_4o.quality == 0.99 and gpt_4o.max_output_tokens == 100


def test_catalog_file_with_bad_quality_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"models": [{"id": "x", "provider": "p", "quality": 2}]}))
    with pytest.raises(InvalidBudgetFile) as raised:
        load_catalog(path)
    assert raised.value.code == "invalid_budget_file"
    message = raised.value.message
    assert message.startswith(
        "AGENTQUEUE_CATALOG_FILE.models[0].quality is invalid: "
        "Input should be less than or equal to 1 (got 2); "
        "AGENTQUEUE_CATALOG_FILE.models[0].latency_ms is invalid: it is required"
    )
    assert message.endswith(f"(in {path})")
