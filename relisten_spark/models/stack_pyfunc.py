"""The stack as an MLflow pyfunc: its weights and its base models in one registered model.

The base models travel as artifacts (their engine registry folders: LightGBM's ``model.txt``
and ``metadata.json``, the nets' ``model.pt`` and spec) and load with the engine's own loaders,
so a registered stack scores exactly as ``relisten score`` does:
``sigmoid(intercept + sum_m w_m * logit_m)``, each ``logit_m`` the logit of model m's
probability clipped to ``[LOGIT_EPS, 1 - LOGIT_EPS]``.

Input: a pandas frame with :func:`input_columns` as doubles (nulls as NaN; the nets' code
columns hold integral values). Output: the stack's probability per row.

This module imports mlflow: import it only where tracking is on (the train-stack hook).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from mlflow.pyfunc.model import PythonModel

from relisten_spark.models import registry
from relisten_spark.models.base_models import load_base_model
from relisten_spark.runtime import LIGHTGBM, LOGIT_EPS


def member_columns(name: str, folder: str | Path) -> list[str]:
    """The feature columns the base model in ``folder`` reads."""
    if name == LIGHTGBM:
        return list(registry.load_metadata(folder)["features"])
    from relisten_spark.models import nets

    spec = json.loads((Path(folder) / nets.SPEC_FILE).read_text())
    inputs = nets.NetInputs.from_dict(spec["inputs"])
    return [*inputs.categorical_names, *inputs.numeric_names]


def input_columns(folders: Mapping[str, str | Path]) -> list[str]:
    """Every column any base model reads, LightGBM's first, in a stable order."""
    names: list[str] = []
    for name in sorted(folders, key=lambda n: n != LIGHTGBM):
        names += [c for c in member_columns(name, folders[name]) if c not in names]
    return names


def _probability(name: str, model: Any, frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    if name == LIGHTGBM:
        x = frame[columns].to_numpy(dtype=np.float64, na_value=np.nan)
        return np.asarray(model.predict(x, num_threads=1), dtype=np.float64)
    from relisten_spark.models import nets, shards

    table = pa.Table.from_pandas(frame[columns], preserve_index=False)
    cat, num = shards.to_arrays(table, model.inputs.categorical_names, model.inputs.numeric_names)
    return np.asarray(nets.predict(model, cat, num), dtype=np.float64)


class StackModel(PythonModel):
    """The stack's weights; its base models come from the artifacts named after them."""

    def __init__(self, weights: Mapping[str, float], intercept: float) -> None:
        self.weights = dict(weights)
        self.intercept = float(intercept)
        self._members: dict[str, tuple[Any, list[str]]] = {}

    def load_context(self, context: Any) -> None:
        for name, path in context.artifacts.items():
            self._members[name] = (load_base_model(name, path), member_columns(name, path))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        z = np.full(len(model_input), self.intercept, dtype=np.float64)
        for name, weight in self.weights.items():
            model, columns = self._members[name]
            p = np.clip(_probability(name, model, model_input, columns), LOGIT_EPS, 1 - LOGIT_EPS)
            z += weight * np.log(p / (1 - p))
        return 1.0 / (1.0 + np.exp(-z))
