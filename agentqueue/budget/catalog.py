"""The catalog of models this deployment may use: provider, quality, latency and token limits."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from pydantic import Field, ValidationError

from agentqueue.budget.budget_files import read_table_file, refused_file
from agentqueue.strict import StrictModel

CATALOG_FILE = "AGENTQUEUE_CATALOG_FILE"


class CatalogModel(StrictModel):
    """One model `model="auto"` may choose."""

    id: str = Field(min_length=1, max_length=128)
    provider: str = Field(min_length=1, max_length=64)
    quality: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    latency_ms: int = Field(ge=1)
    context_window: int = Field(ge=1)
    max_output_tokens: int = Field(ge=1)


class _CatalogFile(StrictModel):
    models: list[CatalogModel]
    include_defaults: bool = False
    comment: str | None = Field(default=None, alias="_comment")


class Catalog:
    """Catalog models by id (case-insensitive), in the order they were listed."""

    def __init__(self, models: list[CatalogModel]) -> None:
        self._models = {model.id.lower(): model for model in models}

    @property
    def models(self) -> tuple[CatalogModel, ...]:
        return tuple(self._models.values())

    def get(self, model_id: str) -> CatalogModel | None:
        return self._models.get(model_id.lower())

    def __len__(self) -> int:
        return len(self._models)


def _parse(data: object, source: str) -> _CatalogFile:
    try:
        return _CatalogFile.model_validate(data)
    except ValidationError as exc:
        raise refused_file(source, CATALOG_FILE, exc) from None


def default_catalog_models() -> list[CatalogModel]:
    """The catalog shipped in `agentqueue/budget/data/catalog.json`."""
    text = resources.files("agentqueue.budget").joinpath("data/catalog.json").read_text("utf-8")
    return _parse(json.loads(text), "built-in catalog").models


def load_catalog(path: Path | None) -> Catalog:
    """The shipped catalog, or the file at `path` (`AGENTQUEUE_CATALOG_FILE`, TOML or JSON).

    The file replaces the shipped list unless it sets `include_defaults = true`, in which
    case its entries are added to (or replace by id) the shipped ones.

    Raises:
        InvalidBudgetFile: the file is missing, unparsable or has a bad entry.
    """
    if path is None:
        return Catalog(default_catalog_models())
    parsed = _parse(read_table_file(path, setting=CATALOG_FILE), str(path))
    models = default_catalog_models() if parsed.include_defaults else []
    overridden = {model.id.lower() for model in parsed.models}
    kept = [model for model in models if model.id.lower() not in overridden]
    return Catalog(kept + list(parsed.models))
