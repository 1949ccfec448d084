"""``relisten train-gbdt`` (:func:`run`): LightGBM trained, registered, its holdout predicted.

Reads ``silver.features`` of ``gbdt.profile``, takes the model columns from
``silver.feature_manifest`` (``in_gbdt``), splits the rows with
:func:`~relisten_spark.splits.assign_eval_split`, trains on ``fit`` rows with the backend of
``gbdt.backend`` (:func:`train`), writes the model to ``<models.root>/lightgbm/<version>/``
(``model.txt``, ``importance.csv``, ``metadata.json``) and its ``calib``/``eval``/``test``
predictions to ``gold.predictions``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightgbm as lgb
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake, tracking
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.models import presets, registry
from relisten_spark.models.feature_inputs import features_path, manifest_path, read_features
from relisten_spark.models.gbdt.barrier import TrainOutput, train_barrier
from relisten_spark.models.gbdt.compiled import compiled_dir
from relisten_spark.models.gbdt.inputs import TrainRows, lightgbm_params, model_columns, task_threads
from relisten_spark.models.gbdt.predict import feature_importance, importance_csv, predict, split_metrics
from relisten_spark.models.presets import TrainSettings
from relisten_spark.predictions import write_predictions
from relisten_spark.runs import new_run_id
from relisten_spark.runtime import LIGHTGBM, LIGHTGBM_MODEL_FILE, PhaseTimer
from relisten_spark.splits import assign_eval_split

log = logging.getLogger(__name__)

IMPORTANCE_FILE = "importance.csv"
SPLITS = ("fit", "calib", "eval", "test")


def train(spark: SparkSession, cfg: Config, rows: TrainRows, settings: TrainSettings) -> TrainOutput:
    """Train with the backend of ``gbdt.backend``; both return LightGBM's native model string."""
    gb = cfg.gbdt
    if gb.backend != "synapseml":
        return train_barrier(
            spark,
            rows,
            settings,
            gb.num_tasks,
            gb.tree_learner,
            gb.network_timeout_s,
        )
    from relisten_spark.models import synapse

    timer = PhaseTimer("lightgbm")
    with timer.phase("synapseml fit"):
        model = synapse.train(
            spark,
            rows,
            settings,
            num_tasks=gb.num_tasks,
            tree_learner=gb.tree_learner,
            num_threads=task_threads(spark),
            timeout_s=gb.network_timeout_s,
        )
        booster = lgb.Booster(model_str=model)
    info = {"rank": 0, "num_trees": booster.num_trees(), "best_iteration": booster.best_iteration}
    return TrainOutput(model=model, ranks=[info], seconds=timer.seconds["synapseml fit"])


def _metadata(
    cfg: Config,
    settings: TrainSettings,
    threads: int,
    columns: list[str],
    categorical: list[str],
    features_version: int,
    counts: dict[str, int],
    output: TrainOutput,
) -> dict[str, Any]:
    """metadata.json of the registered version, without its metrics and feature importance."""
    gb = cfg.gbdt
    return {
        "model": LIGHTGBM,
        "backend": gb.backend,
        "preset": gb.preset,
        "profile": gb.profile,
        "parameters": {
            **lightgbm_params(settings, threads),
            "num_boost_round": settings.num_boost_round,
            "early_stopping_rounds": settings.early_stopping_rounds,
            "tree_learner": gb.tree_learner,
            "num_tasks": gb.num_tasks,
        },
        "features": columns,
        "categorical_features": categorical,
        "categorical_mode": settings.categorical,
        "training_data": {"table": features_path(cfg), "version": features_version, "profile": gb.profile},
        "evaluation": {
            "split_mode": cfg.evaluation.split,
            "holdout_fraction": cfg.evaluation.holdout_fraction,
        },
        "row_counts": {k: counts.get(k, 0) for k in SPLITS},
        "training_seconds": output.seconds,
        "best_iteration": output.best_iteration,
        "num_trees": output.num_trees,
        "ranks": output.ranks,
        "model_file": LIGHTGBM_MODEL_FILE,
        "importance_file": IMPORTANCE_FILE,
    }


def _split_counts(split: DataFrame, profile: str, early_stopping: bool) -> dict[str, int]:
    """Rows per ``eval_split``; an :class:`InputError` without fit rows (or calib rows to stop on)."""
    counts = {r["eval_split"]: int(r["count"]) for r in split.groupBy("eval_split").count().collect()}
    if counts.get("fit", 0) == 0:
        raise InputError(f"silver.features (profile '{profile}') has no training rows")
    if early_stopping and counts.get("calib", 0) == 0:
        raise InputError("gbdt.early_stopping_rounds needs calib rows, but the holdout is empty")
    return counts


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """``relisten train-gbdt``: train, register, predict the holdout; returns a summary."""
    gb = cfg.gbdt
    profile = gb.profile
    tracker = tracking.open_tracker(cfg)
    timer = PhaseTimer("train-gbdt")
    with timer.phase("inputs"):
        table, features_version = read_features(spark, cfg, profile)
        columns, manifest_categorical = model_columns(spark, cfg, profile, table)
        settings = presets.resolve(gb)
        categorical = presets.categorical_columns(settings.categorical, columns, manifest_categorical)
        split = assign_eval_split(table, cfg.evaluation)
        early_stopping = settings.early_stopping_rounds > 0
        counts = _split_counts(split, profile, early_stopping)
    fit = split.where(F.col("eval_split") == "fit")
    valid = split.where(F.col("eval_split") == "calib") if early_stopping else None

    with timer.phase("training"):
        output = train(spark, cfg, TrainRows(fit, valid, columns, categorical), settings)
    importance = feature_importance(output.model)
    holdout = split.where(F.col("eval_split").isin("calib", "eval", "test"))
    # the model `score` will use is compiled here, so scoring finds it compiled; others are not
    scored_later = cfg.scoring.compiled_gbdt and profile == cfg.scoring.profile
    compiled = compiled_dir(cfg.models.root) if scored_later else None
    preds = predict(spark, holdout, output.model, columns, compiled).persist()
    try:
        with timer.phase("predictions"):
            metrics = split_metrics(preds)
            metadata = _metadata(
                cfg, settings, task_threads(spark), columns, categorical, features_version, counts, output
            )
            metadata["metrics"] = metrics
            metadata["feature_importance_gain"] = {r["feature"]: r["gain"] for r in importance}

            def write_files(folder: Path) -> None:
                (folder / LIGHTGBM_MODEL_FILE).write_text(output.model)
                (folder / IMPORTANCE_FILE).write_text(importance_csv(importance))

            version = registry.save_model(cfg.models.root, LIGHTGBM, write_files, metadata)
            run_id = new_run_id("train-gbdt")
            write_predictions(spark, cfg, preds, LIGHTGBM, version, profile, run_id)
    finally:
        preds.unpersist()
    log.info("lightgbm %s (%s profile) eval: %s", version, profile, metrics.get("eval"))
    tracked = tracker.log(_stage_log(cfg, run_id, version, metadata, output.model, timer.seconds))
    return {
        "run_id": run_id,
        "profile": profile,
        "backend": gb.backend,
        "preset": gb.preset,
        "model_versions": {LIGHTGBM: version},
        "input_versions": {"silver.features": features_version},
        "rows": {k: counts.get(k, 0) for k in SPLITS},
        "features": len(columns),
        "trees": output.num_trees,
        "train_s": round(output.seconds, 2),
        "eval": {k: f"{v:.4f}" for k, v in metrics.get("eval", {}).items() if v is not None},
        "mlflow": tracked,
    }


def _stage_log(
    cfg: Config, run_id: str, version: str, metadata: dict[str, Any], model: str, seconds: dict[str, float]
) -> tracking.StageLog:
    """The MLflow view of a train-gbdt run: the booster as a LightGBM model, its registry files."""
    folder = registry.resolve(cfg.models.root, LIGHTGBM, version)
    keys = ("backend", "preset", "profile", "categorical_mode", "evaluation")
    booster = tracking.ModelLog(
        LIGHTGBM,
        "lightgbm",
        lambda: lgb.Booster(model_str=model),
        version,
        cfg.gbdt.profile,
        columns=[(c, "double") for c in metadata["features"]],
    )
    return tracking.StageLog(
        "train-gbdt",
        run_id,
        params={**metadata["parameters"], **{k: metadata[k] for k in keys}, "engine_version": version},
        metrics={**metadata["metrics"], "rows": metadata["row_counts"], "num_trees": metadata["num_trees"]},
        seconds=seconds,
        input_versions={
            "silver.features": metadata["training_data"]["version"],
            "silver.feature_manifest": lake.version(manifest_path(cfg)),
        },
        features=metadata["features"],
        tags={"relisten.profile": cfg.gbdt.profile},
        files=[str(folder / IMPORTANCE_FILE), str(folder / registry.METADATA)],
        models=[booster],
    )
