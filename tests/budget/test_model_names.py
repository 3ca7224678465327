"""Which model names a deployment knows, and the did-you-mean for the ones it does not."""

from __future__ import annotations

import pytest

from agentqueue.budget.catalog import Catalog, CatalogModel, load_catalog
from agentqueue.budget.model_names import KnownModels, UnknownModel
from agentqueue.budget.pricing import PriceBook


@pytest.fixture(scope="module")
def known() -> KnownModels:
    return KnownModels(load_catalog(None), PriceBook())


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("gpt4o-mini", "gpt-4o-mini"),
        ("claude-haiku45", "claude-haiku-4-5"),
        ("GPT-4o-minii", "gpt-4o-mini"),
        ("gemini-2.0-flsh", "gemini-2.0-flash"),  # not catalogued: genai-prices' names count
    ],
)
def test_a_typo_gets_the_closest_known_name(known: KnownModels, typo: str, meant: str) -> None:
    assert not known.is_known(typo)
    assert known.suggest(typo) == meant


def test_priced_catalogued_and_auto_are_known_and_nonsense_has_no_suggestion(
    known: KnownModels,
) -> None:
    assert known.is_known("gpt-4o-mini") and known.is_known("auto")
    assert known.is_known("gpt-4o-mini-2024-07-18")  # priced, not in the catalog
    assert known.suggest("zzqx-unheard-of") is None


def test_a_catalog_only_model_is_known_and_check_names_the_field() -> None:
    """An unpriced model the operator catalogued passes (the worker will say it has no price);
    `check` names the field of the first unknown model."""
    entry = CatalogModel(
        id="house-llm",
        provider="openai",
        quality=0.5,
        latency_ms=100,
        context_window=8000,
        max_output_tokens=1000,
    )
    known = KnownModels(Catalog([entry]), PriceBook())
    known.check([("model", "house-llm")])
    with pytest.raises(UnknownModel) as raised:
        known.check([("model", "house-llm"), ("fallbacks.0", "house-lm")])
    assert raised.value.code == "unknown_model" and raised.value.field == "fallbacks.0"
    assert "did you mean 'house-llm'?" in raised.value.message
