"""Feature importance for the report, named by the features' family labels
(:mod:`relisten_spark.features.labels`).

* :func:`lightgbm_gain` — LightGBM's total gain of each LightGBM version in gold.predictions:
  its top columns (each with its label) and the gain summed per label.
* :func:`permutation_importance` — for the latest stack of a profile, its base models (LightGBM
  and the nets) and the stack itself, on a sample of at most :data:`PERMUTATION_ROWS` eval rows
  of silver.features: the drop of ROC-AUC when the columns of one label are permuted together
  (one permutation of the rows, the same for every label and model), the models scored as
  ``relisten score`` scores them (:func:`relisten_spark.scoring.rank.base_logits`).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.evaluation.uncertainty import weighted_auc
from relisten_spark.features import labels
from relisten_spark.models import registry
from relisten_spark.models.feature_inputs import read_features
from relisten_spark.predictions import predictions_path
from relisten_spark.runtime import LIGHTGBM, LIGHTGBM_MODEL_FILE, STACK
from relisten_spark.scoring import rank
from relisten_spark.splits import assign_eval_split

log = logging.getLogger(__name__)

TOP_FEATURES = 25
PERMUTATION_ROWS = 2_000
SEED = 11


def lightgbm_gain(spark: SparkSession, cfg: Config) -> dict[str, pd.DataFrame]:
    """{"<profile> (lightgbm <version>)": [feature, label, gain]} (every column, largest gain
    first) for each LightGBM version in gold.predictions."""
    path = predictions_path(cfg)
    if not lake.exists(path):
        return {}
    versions = (
        lake.read(spark, path, where={"model": LIGHTGBM})
        .select("profile", "model_version")
        .distinct()
        .collect()
    )  # a few versions
    out: dict[str, pd.DataFrame] = {}
    for row in sorted(versions, key=lambda r: (r["profile"], r["model_version"])):
        try:
            folder = registry.resolve(cfg.models.root, LIGHTGBM, row["model_version"])
        except InputError as exc:
            log.warning("report: no feature importance for lightgbm %s: %s", row["model_version"], exc)
            continue
        import lightgbm

        booster = lightgbm.Booster(model_file=str(folder / LIGHTGBM_MODEL_FILE))
        names = booster.feature_name()
        gain = pd.DataFrame(
            {
                "feature": names,
                "label": [labels.feature_label(n) for n in names],
                "gain": booster.feature_importance(importance_type="gain"),
            }
        )
        ordered = gain.sort_values(["gain", "feature"], ascending=[False, True]).reset_index(drop=True)
        out[f"{row['profile']} (lightgbm {row['model_version']})"] = ordered
    return out


def gain_by_label(gain: pd.DataFrame) -> pd.DataFrame:
    """``[label, gain]``: :func:`lightgbm_gain`'s gain summed per label, largest first."""
    summed = gain.groupby("label", as_index=False)["gain"].sum()
    return summed.sort_values(["gain", "label"], ascending=[False, True]).reset_index(drop=True)


def _sample(spark: SparkSession, cfg: Config, profile: str, columns: list[str]) -> pa.Table:
    """At most :data:`PERMUTATION_ROWS` eval rows of silver.features ``[target, *columns]``."""
    features, _ = read_features(spark, cfg, profile)
    rows = assign_eval_split(features, cfg.evaluation).where(
        (F.col("eval_split") == "eval") & F.col("target").isNotNull()
    )
    total = rows.count()
    if not total:
        raise InputError(f"silver.features (profile '{profile}') has no eval rows")
    fraction = min(1.0, PERMUTATION_ROWS / total)
    sample = rows.sample(fraction=fraction, seed=SEED).limit(PERMUTATION_ROWS)
    return sample.select("target", *columns).toArrow()  # <= PERMUTATION_ROWS rows


def _aucs(ens: rank.Ensemble, table: pa.Table, target: np.ndarray) -> dict[str, float]:
    """Each base model's and the stack's ROC-AUC on ``table``."""
    lgb_x = rank._lgb_matrix(table, ens.lgb_features)
    logits = rank.base_logits(ens, table, lgb_x)
    scores = {**logits, STACK: rank.stack_probability(ens, logits)}
    ones = np.ones((1, len(target)))
    return {name: float(weighted_auc(np.asarray(s), target, ones)[0]) for name, s in scores.items()}


def permutation_importance(spark: SparkSession, cfg: Config, profile: str) -> pd.DataFrame:
    """``[model, label, drop]``: the ROC-AUC drop of each model (the stack's base models and the
    stack) when the columns of one label are permuted, on a sample of eval rows (module
    docstring). Raises :class:`InputError` when no stack of ``profile`` is trained."""
    ens = rank.load_ensemble(cfg.models.root, profile)
    table = _sample(spark, cfg, profile, ens.columns)
    target = table.column("target").to_numpy(zero_copy_only=False).astype(np.float64)
    base = _aucs(ens, table, target)
    groups: dict[str, list[str]] = {}
    for column in ens.columns:
        groups.setdefault(labels.feature_label(column), []).append(column)
    order = pa.array(np.random.default_rng(SEED).permutation(table.num_rows))
    rows = []
    for label, columns in groups.items():
        permuted = table
        for column in columns:
            at = permuted.schema.get_field_index(column)
            permuted = permuted.set_column(at, column, permuted.column(column).take(order))
        for model, auc in _aucs(ens, permuted, target).items():
            rows.append((model, label, base[model] - auc))
    return pd.DataFrame(rows, columns=["model", "label", "drop"])
