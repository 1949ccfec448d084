"""The stack's base models loaded from their registry folders: the one loader that the scoring
workers (:mod:`~relisten_spark.scoring.rank`) and the MLflow pyfunc
(:mod:`~relisten_spark.models.stack_pyfunc`) share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relisten_spark.models.gbdt.task import lightgbm_module
from relisten_spark.runtime import LIGHTGBM, LIGHTGBM_MODEL_FILE


def load_base_model(name: str, folder: str | Path) -> Any:
    """Base model ``name`` from its version ``folder``: a LightGBM ``Booster`` (``model.txt``;
    inside a Spark task LightGBM loads without its scikit-learn API, see
    :func:`~relisten_spark.models.gbdt.task.lightgbm_module`) or a net (``nets.load``)."""
    if name == LIGHTGBM:
        return lightgbm_module().Booster(model_file=str(Path(folder) / LIGHTGBM_MODEL_FILE))
    from relisten_spark.models import nets

    return nets.load(folder)
