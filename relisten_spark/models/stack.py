"""``relisten train-stack``: logistic regression over the base models' logits (thesis §6.4).

The thesis fit its meta-model *and* reported it on the same 705,698 rows (FEATURES.md §5 item 3).
Here the stack is fit on the ``calib`` half of the holdout only and reported on ``eval``, the
rows neither it nor the base models were fit on:

* inputs: gold.predictions of ``stack.models`` (default lightgbm, jenn, felu_net) for one
  profile (``stack.profile``, default ``scoring.profile``: the stack is the model that scores);
  models without predictions there are left out (logged and listed in the summary), so the
  stack works with what was trained; at least one is needed;
* features: each model's ``logit``, joined on ``idx``; rows every model predicted;
* fit: scikit-learn ``LogisticRegression(C, class_weight, lbfgs, max_iter)`` on the calib rows.
  The calib rows are brought to the driver, at most ``stack.max_calib_rows`` of them (a seeded
  sample when there are more; three doubles and a label per row, so the default million is
  about 32 MB);
* output: the stack's logit ``b + sum_m w_m * logit_m`` (a Spark column expression) and its
  probability for the calib, eval and test rows, written to gold.predictions as model
  ``stack``; the weights go to the registry (``stack.json`` and metadata.json) with the base
  models' versions, so scoring loads exactly the models the weights belong to.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn.linear_model import LogisticRegression

from relisten_spark import lake, tracking
from relisten_spark.config import Config, StackConfig
from relisten_spark.errors import InputError
from relisten_spark.metrics import binary_metrics
from relisten_spark.models import registry
from relisten_spark.models.gbdt.predict import split_metrics
from relisten_spark.predictions import predictions_path, read_predictions, write_predictions
from relisten_spark.runs import new_run_id
from relisten_spark.runtime import STACK, STACK_WEIGHTS_FILE

log = logging.getLogger(__name__)

KEYS = ("idx", "msno", "song_id", "eval_split", "split_mode", "target")
REPORTED_SPLITS = ("calib", "eval", "test")


def stack_profile(cfg: Config) -> str:
    """The profile whose predictions the stack combines: ``stack.profile`` or ``scoring.profile``."""
    return cfg.stack.profile or cfg.scoring.profile


def logit_column(model: str) -> str:
    return f"logit_{model}"


def base_frame(preds: DataFrame, models: Sequence[str]) -> DataFrame:
    """One row per ``idx`` with every model's logit side by side.

    ``preds``: gold.predictions rows ``[model, idx, msno, song_id, eval_split, split_mode, target,
    logit, ...]`` of one profile. Returns ``[idx, msno, song_id, eval_split, split_mode, target,
    logit_<model>...]`` for the rows every model in ``models`` predicted.
    """
    frames = [
        preds.where(F.col("model") == m).select(
            *KEYS if i == 0 else ["idx"], F.col("logit").alias(logit_column(m))
        )
        for i, m in enumerate(models)
    ]
    joined = frames[0]
    for frame in frames[1:]:
        joined = joined.join(frame, "idx")
    return joined


def fit_weights(
    logits: np.ndarray, target: np.ndarray, cfg: StackConfig, models: Sequence[str]
) -> tuple[dict[str, float], float]:
    """Fit the logistic regression; return ({model: weight}, intercept)."""
    if len(np.unique(target)) < 2:
        raise InputError("the calib rows hold one class only: the stack cannot be fit (holdout too small?)")
    lr = LogisticRegression(
        C=cfg.C,
        class_weight=None if cfg.class_weight == "none" else cfg.class_weight,
        solver="lbfgs",
        max_iter=cfg.max_iter,
        random_state=cfg.seed,
    )
    lr.fit(logits, target)
    return {m: float(w) for m, w in zip(models, lr.coef_[0], strict=True)}, float(lr.intercept_[0])


def stack_logit(weights: Mapping[str, float], intercept: float) -> Column:
    """``intercept + sum_m weights[m] * logit_<m>`` over a :func:`base_frame`."""
    total: Column = F.lit(float(intercept))
    for model, w in weights.items():
        total = total + F.lit(float(w)) * F.col(logit_column(model))
    return total


def calib_sample(
    frame: DataFrame, models: Sequence[str], max_rows: int, seed: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """The calib rows' logits and labels on the driver, at most ``max_rows`` (seeded sample).

    Returns (logits ``[n, len(models)]``, labels ``[n]``, number of calib rows in total).
    """
    calib = frame.where((F.col("eval_split") == "calib") & F.col("target").isNotNull())
    cols = [logit_column(m) for m in models]
    calib = calib.select(*cols, "target").dropna()
    total = calib.count()
    if total == 0:
        raise InputError("gold.predictions has no labelled calib rows shared by the base models")
    if total > max_rows:
        calib = calib.sample(withReplacement=False, fraction=min(1.0, 1.05 * max_rows / total), seed=seed)
        calib = calib.limit(max_rows)
    pdf: pd.DataFrame = calib.toPandas()  # at most max_rows x (models + 1) values
    return pdf[cols].to_numpy(dtype=np.float64), pdf["target"].to_numpy(dtype=np.int64), total


def _available(preds: DataFrame, wanted: Sequence[str]) -> tuple[dict[str, str], str | None]:
    """({model: version} of the wanted models present in ``preds``, their common split mode)."""
    rows = (
        preds.where(F.col("model").isin(list(wanted)))
        .select("model", "model_version", "split_mode")
        .distinct()
        .collect()
    )
    versions: dict[str, set[str]] = {}
    for r in rows:
        versions.setdefault(r["model"], set()).add(r["model_version"])
    several = {m: sorted(v) for m, v in versions.items() if len(v) > 1}
    if several:
        raise InputError(f"gold.predictions holds several versions of a model for one profile: {several}")
    modes = sorted({str(r["split_mode"]) for r in rows})
    if len(modes) > 1:
        raise InputError(f"the base models' predictions mix split modes {modes}: retrain them with one")
    return {m: next(iter(versions[m])) for m in wanted if m in versions}, (modes[0] if modes else None)


def eval_auc(spark: SparkSession, cfg: Config, profile: str, models: Sequence[str]) -> dict[str, float]:
    """ROC-AUC on the eval rows of each of ``models`` (gold.predictions, one profile)."""
    preds = read_predictions(spark, cfg, profile=profile).where(
        F.col("model").isin(list(models)) & (F.col("eval_split") == "eval")
    )
    rows = binary_metrics(preds, ["model"]).where(F.col("metric") == "roc_auc").collect()
    return {r["model"]: float(r["value"]) for r in rows if r["value"] is not None}


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """``relisten train-stack``: fit on calib, predict calib/eval/test, register the weights."""
    started = time.perf_counter()
    profile = stack_profile(cfg)
    tracker = tracking.open_tracker(cfg)
    run_id = new_run_id("train-stack")
    path = predictions_path(cfg)
    if not lake.exists(path):
        raise InputError(f"no predictions table at {path}: run train-gbdt and train-nets first")
    read_version = lake.version(path)
    preds = read_predictions(spark, cfg, profile=profile)
    versions, split_mode = _available(preds, cfg.stack.models)
    missing = [m for m in cfg.stack.models if m not in versions]
    if not versions:
        raise InputError(
            f"gold.predictions has no predictions of {list(cfg.stack.models)} for profile '{profile}' "
            f"(train them with --set gbdt.profile={profile} / nets.profile={profile})"
        )
    if missing:
        log.warning(
            "train-stack: no %s predictions for profile %s; stacking %s", missing, profile, list(versions)
        )
    models = list(versions)
    frame = base_frame(preds, models)
    logits, target, calib_rows = calib_sample(frame, models, cfg.stack.max_calib_rows, cfg.stack.seed)
    weights, intercept = fit_weights(logits, target, cfg.stack, models)
    log.info("train-stack: weights %s intercept %.4f on %d calib rows", weights, intercept, len(target))

    metadata = {
        "run_id": run_id,
        "profile": profile,
        "split_mode": split_mode,
        "base_models": versions,
        "missing_models": missing,
        "weights": weights,
        "intercept": intercept,
        "calib_rows": calib_rows,
        "calib_rows_used": len(target),
        "params": cfg.stack.model_dump(mode="json"),
        "config_hash": cfg.digest(),
    }

    def write(folder: Path) -> None:
        payload = {"base_models": versions, "weights": weights, "intercept": intercept}
        (folder / STACK_WEIGHTS_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True))

    version = registry.save_model(cfg.models.root, STACK, write, metadata)
    logit = stack_logit(weights, intercept)
    out = frame.where(F.col("eval_split").isin(*REPORTED_SPLITS)).select(
        *KEYS, (F.lit(1.0) / (F.lit(1.0) + F.exp(-logit))).alias("score")
    )
    write_predictions(spark, cfg, out, STACK, version, profile, run_id)
    auc = eval_auc(spark, cfg, profile, [*models, STACK])
    best = max((m for m in models if m in auc), key=lambda m: auc[m], default=None)
    seconds = round(time.perf_counter() - started, 2)
    track = tracker.enabled
    tracked = tracker.log(_stage_log(spark, cfg, version, metadata, read_version, seconds)) if track else {}
    return {
        "run_id": run_id,
        "profile": profile,
        "version": version,
        "model_versions": {**versions, STACK: version},
        "missing_models": missing,
        "weights": {m: f"{w:.4f}" for m, w in weights.items()},
        "intercept": f"{intercept:.4f}",
        "calib_rows": calib_rows,
        "calib_rows_used": len(target),
        "eval_roc_auc": {m: f"{v:.5f}" for m, v in sorted(auc.items())},
        "best_single_model": best or "",
        "seconds": seconds,
        "mlflow": tracked,
    }


def _stage_log(
    spark: SparkSession,
    cfg: Config,
    version: str,
    metadata: dict[str, Any],
    read_version: int,
    seconds: float,
) -> tracking.StageLog:
    """The MLflow view of a train-stack run: the stack as a pyfunc carrying its base models, its
    metrics per split, the base models' registered versions as its parents."""
    from relisten_spark.models.stack_pyfunc import StackModel, input_columns

    profile, bases = metadata["profile"], metadata["base_models"]
    folders = {m: str(registry.resolve(cfg.models.root, m, v)) for m, v in bases.items()}
    weights, intercept = metadata["weights"], metadata["intercept"]
    model = tracking.ModelLog(
        STACK,
        "pyfunc",
        lambda: StackModel(weights, intercept),
        version,
        profile,
        columns=[(c, "double") for c in input_columns(folders)],
        parents=bases,
        artifacts=folders,
        requirements=[f"lightgbm=={tracking.package_version('lightgbm')}"],
    )
    preds = read_predictions(spark, cfg, model=STACK, profile=profile)
    return tracking.StageLog(
        "train-stack",
        metadata["run_id"],
        params={**metadata["params"], "profile": profile, "base_models": bases, "engine_version": version},
        metrics={
            **split_metrics(preds.where(F.col("model_version") == version)),
            "weights": weights,
            "intercept": intercept,
            "calib_rows": metadata["calib_rows"],
        },
        seconds={"total": seconds},
        input_versions={"gold.predictions": read_version},
        tags={"relisten.profile": profile},
        models=[model],
    )
