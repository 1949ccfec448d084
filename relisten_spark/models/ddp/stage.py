"""``relisten train-nets`` (:func:`run`): JENN and F-ELU-Net trained with DDP, their holdout predicted."""

from __future__ import annotations

import functools
import logging
import shutil
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake, tracking
from relisten_spark.config import Config
from relisten_spark.models import nets, registry
from relisten_spark.models.ddp.inputs import PreparedInputs, prepare_inputs, read_shards, work_folder
from relisten_spark.models.ddp.job import build_job
from relisten_spark.models.ddp.launch import launch
from relisten_spark.models.ddp.predict import score_frame
from relisten_spark.models.feature_inputs import manifest_path
from relisten_spark.models.gbdt.predict import split_metrics
from relisten_spark.predictions import read_predictions, write_predictions
from relisten_spark.runs import new_run_id
from relisten_spark.runtime import PhaseTimer

log = logging.getLogger(__name__)

SUMMARY_KEYS = ("version", "val_auc", "epochs_run", "rows_per_s_per_process", "train_seconds")


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """`relisten train-nets`: train the configured nets on ``nets.profile``, write predictions.

    The run's input shards live in its work folder in the model store, removed when it ends.
    """
    profile = cfg.nets.profile
    tracker = tracking.open_tracker(cfg)
    run_id = new_run_id("train-nets")
    work = work_folder(cfg, run_id)
    timer = PhaseTimer("train-nets")
    try:
        with timer.phase("inputs"):
            prepared = prepare_inputs(spark, cfg, profile, work)
        job = build_job(cfg, prepared, run_id)
        log.info(
            "train-nets: %s on profile %s, %d process(es)",
            list(cfg.nets.models),
            profile,
            cfg.nets.num_processes,
        )
        with timer.phase("training"):
            results = launch(job, cfg.nets.num_processes, cfg.nets.local_mode, cfg.nets.use_gpu)
        summary: dict[str, Any] = {"profile": profile, "run_id": run_id, "rows": prepared.rows}
        with timer.phase("predictions"):
            holdout = read_shards(spark, prepared).where(F.col("eval_split") != "fit")
            for kind, result in results.items():
                folder = str(registry.resolve(job.models_root, kind, result["version"]))  # absolute
                preds = score_frame(holdout, folder, prepared.inputs).withColumn(
                    "split_mode", F.lit(cfg.evaluation.split)
                )
                write_predictions(spark, cfg, preds, kind, result["version"], profile, run_id)
                summary[kind] = {k: result[k] for k in SUMMARY_KEYS}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if tracker.enabled:
        versions = {kind: str(result["version"]) for kind, result in results.items()}
        summary["mlflow"] = tracker.log(_stage_log(spark, cfg, run_id, prepared, versions, timer.seconds))
    return summary


def _stage_log(
    spark: SparkSession,
    cfg: Config,
    run_id: str,
    prepared: PreparedInputs,
    versions: dict[str, str],
    seconds: dict[str, float],
) -> tracking.StageLog:
    """The MLflow view of a train-nets run: each net as a PyTorch model, its metrics per split
    (from the predictions just written) and training figures, keyed by the net's name."""
    profile = cfg.nets.profile
    models, params, metrics = [], {}, {}
    preds = read_predictions(spark, cfg, profile=profile)
    for kind, version in versions.items():
        folder = registry.resolve(cfg.models.root, kind, version)
        meta = registry.load_metadata(folder)
        params[kind] = {**meta["train_params"], "engine_version": version}
        mine = preds.where((F.col("model") == kind) & (F.col("model_version") == version))
        metrics[kind] = {**split_metrics(mine), **meta["metrics"]}
        tensors = [
            ("cat", "int64", len(prepared.inputs.categorical_names)),
            ("num", "float32", len(prepared.inputs.numeric_names)),
        ]
        load = functools.partial(nets.load, folder)
        models.append(tracking.ModelLog(kind, "pytorch", load, version, profile, tensors=tensors))
    return tracking.StageLog(
        "train-nets",
        run_id,
        params={"nets": params, "profile": profile, "num_processes": cfg.nets.num_processes},
        metrics={**metrics, "rows": prepared.rows},
        seconds=seconds,
        input_versions={
            "silver.features": prepared.features_version,
            "silver.feature_manifest": lake.version(manifest_path(cfg)),
        },
        features=[*prepared.inputs.categorical_names, *prepared.inputs.numeric_names],
        tags={"relisten.profile": profile},
        models=models,
    )
