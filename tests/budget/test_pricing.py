"""Prices from genai-prices' bundled data and from the operator's override file."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price

from agentqueue.budget.errors import InvalidBudgetFile, UnknownModelPrice
from agentqueue.budget.price_overrides import load_price_overrides
from agentqueue.budget.pricing import PriceBook, to_money

KNOWN_MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-nano",
    "claude-sonnet-4-0",
    "claude-3-5-haiku-latest",
]


@pytest.mark.parametrize("model", KNOWN_MODELS)
def test_costs_match_genai_prices_exactly(model: str) -> None:
    """Given a known model and a usage with cached input, when we price it, then the cost equals
    genai_prices.calc_price to the last digit (acceptance 5: to the cent-fraction)."""
    book = PriceBook()
    for input_tokens, output_tokens, cached in [(1234, 567, 0), (10_000, 1, 4_000), (7, 3000, 7)]:
        expected = calc_price(
            Usage(input_tokens=input_tokens, cache_read_tokens=cached, output_tokens=output_tokens),
            model,
        ).total_price
        ours = book.price(model).cost(input_tokens, output_tokens, cached)
        assert ours == expected
        assert to_money(ours) == expected.quantize(Decimal("0.0000000001"))


def test_dated_model_ids_resolve_to_their_family() -> None:
    """Given a dated snapshot id, when priced, then it costs what its family costs."""
    book = PriceBook()
    assert book.price("gpt-4o-mini-2024-07-18").cost(1000, 1000) == book.price("gpt-4o-mini").cost(
        1000, 1000
    )
    assert book.price("gpt-4o-mini").provider == "openai"
    assert book.price("claude-sonnet-4-20250514").provider == "anthropic"


def test_known_per_token_prices_of_gpt_4o_mini() -> None:
    """Given gpt-4o-mini ($0.15 in, $0.075 cached, $0.60 out per MTok), when we cost one million
    of each, then the dollars are exactly those prices."""
    priced = PriceBook().price("gpt-4o-mini")
    assert priced.cost(1_000_000, 0) == Decimal("0.15")
    assert priced.cost(1_000_000, 0, 1_000_000) == Decimal("0.075")
    assert priced.cost(0, 1_000_000) == Decimal("0.6")


def test_unknown_model_is_refused_not_free() -> None:
    """Given a model nobody prices, when priced, then UnknownModelPrice (never $0)."""
    with pytest.raises(UnknownModelPrice) as caught:
        PriceBook().price("my-private-llm-70b")
    assert caught.value.code == "unknown_model_price"
    assert "AGENTQUEUE_PRICES_FILE" in caught.value.message


def test_model_without_output_price_is_refused() -> None:
    """Given an embedding model (input price only), when priced for chat, then refused: its
    output tokens would otherwise count as $0."""
    with pytest.raises(UnknownModelPrice):
        PriceBook().price("text-embedding-3-small")


def test_service_tiers_use_the_data_where_it_has_them() -> None:
    """Given o4-mini (flex and batch in the data), when priced on those tiers, then half price;
    given gpt-4o-mini (batch only), flex falls back to the standard price (never cheaper than
    what we know)."""
    book = PriceBook()
    standard = book.price("o4-mini").cost(10_000, 2_000)
    assert book.price("o4-mini", "flex").cost(10_000, 2_000) == standard / 2
    assert book.price("o4-mini", "batch").cost(10_000, 2_000) == standard / 2
    assert book.price("o4-mini", "flex").tier_source == "data"
    mini = book.price("gpt-4o-mini", "flex")
    assert mini.tier_source == "no_tier_price"
    assert mini.cost(10_000, 2_000) == book.price("gpt-4o-mini").cost(10_000, 2_000)
    expected = calc_price(
        Usage(input_tokens=10_000, output_tokens=2_000),
        "gpt-4o-mini",
        price_context={"processing": "batch"},
    ).total_price
    assert book.price("gpt-4o-mini", "batch").cost(10_000, 2_000) == expected


def test_unknown_tier_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown service tier"):
        PriceBook().price("gpt-4o", "turbo")


TOML_PRICES = """
[tier_multipliers]
flex = 0.5

[models."llama-3.1-70b-local"]
provider = "self-hosted"
input_per_mtok = 0.20
output_per_mtok = "0.60"

[models."llama-3.1-70b-local".tiers.batch]
input_per_mtok = 0.10
output_per_mtok = 0.30

[models."gpt-4o"]
provider = "openai"
input_per_mtok = 2.00
output_per_mtok = 8.00
cached_input_per_mtok = 1.00
"""


def test_toml_override_prices_a_custom_model_and_its_tiers(tmp_path: Path) -> None:
    """Given a TOML prices file, when a custom model is priced, then the file's rates apply,
    an explicit tier uses its rates, and a tier without rates uses the multiplier."""
    path = tmp_path / "prices.toml"
    path.write_text(TOML_PRICES)
    book = PriceBook(load_price_overrides(path))
    llama = book.price("llama-3.1-70b-local")
    assert llama.provider == "self-hosted"
    assert llama.cost(1_000_000, 1_000_000) == Decimal("0.80")
    assert llama.cost(1_000_000, 0, 500_000) == Decimal("0.20")  # cached defaults to input rate
    assert book.price("llama-3.1-70b-local", "batch").cost(1_000_000, 1_000_000) == Decimal("0.40")
    flex = book.price("llama-3.1-70b-local", "flex")
    assert flex.tier_source == "multiplier"
    assert flex.cost(1_000_000, 1_000_000) == Decimal("0.40")


def test_override_replaces_a_genai_price_and_multiplier_covers_missing_tiers(
    tmp_path: Path,
) -> None:
    """Given the file re-prices gpt-4o (say, a negotiated rate), then the file wins; and a
    genai model without flex data (gpt-4.1) takes the file's flex multiplier."""
    path = tmp_path / "prices.toml"
    path.write_text(TOML_PRICES)
    book = PriceBook(load_price_overrides(path))
    assert book.price("gpt-4o").cost(1_000_000, 1_000_000, 1_000_000) == Decimal("9.00")
    standard = book.price("gpt-4.1").cost(10_000, 1_000)
    assert book.price("gpt-4.1", "flex").cost(10_000, 1_000) == standard * Decimal("0.5")


def test_json_override_is_read_the_same_way(tmp_path: Path) -> None:
    """Given the same prices as JSON, when priced, then identical results."""
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "tier_multipliers": {"batch": "0.5"},
                "models": {
                    "My-Model": {"input_per_mtok": 1, "output_per_mtok": 2, "provider": "vllm"}
                },
            }
        )
    )
    book = PriceBook(load_price_overrides(path))
    assert book.price("my-model").cost(1_000_000, 1_000_000) == Decimal("3")
    assert book.price("my-model", "batch").cost(1_000_000, 1_000_000) == Decimal("1.5")


@pytest.mark.parametrize(
    ("content", "suffix", "fragment"),
    [
        (
            '[models."x"]\ninput_per_mtok = 0\noutput_per_mtok = 1\n',
            ".toml",
            "AGENTQUEUE_PRICES_FILE.models.x.input_per_mtok is invalid: "
            "Input should be greater than 0 (got 0)",
        ),
        (
            '[models."x"]\ninput_per_mtok = 1\n',
            ".toml",
            "AGENTQUEUE_PRICES_FILE.models.x.output_per_mtok is invalid: it is required",
        ),
        ("[tier_multipliers]\nturbo = 0.5\n", ".toml", "unknown service tier"),
        ("not = [valid", ".toml", "not valid"),
        ("[1, 2]", ".json", "top level"),
    ],
)
def test_bad_prices_files_are_rejected_with_the_reason(
    tmp_path: Path, content: str, suffix: str, fragment: str
) -> None:
    """Given a broken prices file (zero price, missing field, unknown tier, bad syntax), when
    loaded, then InvalidBudgetFile names the setting and the problem."""
    path = tmp_path / f"prices{suffix}"
    path.write_text(content)
    with pytest.raises(InvalidBudgetFile) as caught:
        load_price_overrides(path)
    assert "AGENTQUEUE_PRICES_FILE" in caught.value.message
    assert fragment in caught.value.message


def test_missing_prices_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(InvalidBudgetFile, match="cannot read"):
        load_price_overrides(tmp_path / "absent.toml")


def test_flat_arithmetic_agrees_with_genai_prices_across_the_whole_data() -> None:
    """Given every OpenAI and Anthropic model in the bundled data, on every tier, when our
    cost (flat arithmetic where safe, genai-prices' calculation otherwise) is compared with
    genai_prices.calc_price for several usages, then they are identical wherever priced."""
    from genai_prices import data_snapshot

    book = PriceBook()
    checked = flat = 0
    contexts = {
        "standard": None,
        "flex": {"service_tier": "flex"},
        "batch": {"processing": "batch"},
    }
    for provider in data_snapshot.get_snapshot().providers:
        if provider.id not in ("openai", "anthropic"):
            continue
        for info in provider.models:
            for tier, context in contexts.items():
                try:
                    priced = book.price(info.id, tier, provider=provider.id)
                except UnknownModelPrice:
                    continue
                if priced.tier_source not in ("standard", "data"):
                    continue
                flat += getattr(priced, "flat", None) is not None
                for tokens in [(1, 0, 0), (123_456, 7_890, 100_000), (300_000, 50, 299_999)]:
                    usage = Usage(
                        input_tokens=tokens[0], cache_read_tokens=tokens[2], output_tokens=tokens[1]
                    )
                    expected = calc_price(
                        usage, info.id, provider_id=provider.id, price_context=context
                    ).total_price
                    assert priced.cost(*tokens) == expected, (info.id, tier, tokens)
                checked += 1
    assert checked > 100 and flat > 50


def test_a_tier_without_its_own_price_falls_back_to_the_next_cheaper_one() -> None:
    """Given batch wanted: a model with a batch price runs on batch; o4-mini's batch price is
    used too; a model priced for neither batch nor flex runs on standard (never mislabelled as
    a tier whose discount it does not get)."""
    book = PriceBook()
    assert book.price_best_tier("gpt-4o-mini", "batch").service_tier == "batch"
    assert book.price_best_tier("gpt-4o-mini", "flex").service_tier == "standard"
    assert book.price_best_tier("o4-mini", "flex").service_tier == "flex"
    sonnet = book.price_best_tier("claude-sonnet-4-0", "batch")
    assert sonnet.service_tier == "standard" and sonnet.tier_source == "standard"
