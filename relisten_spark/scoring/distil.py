"""``relisten finetune-retriever`` (:func:`run`): the retriever's stage 2, distilling the ranker.

1. teacher lists (:mod:`~relisten_spark.scoring.teacher`): the latest stage-1 retriever's top M
   for a sample of training-period users as of the holdout cutoff, scored by the serving stack
   as of that cutoff -> ``silver.retriever_teacher``;
2. the lists and the users' histories as Parquet shards under
   ``<models.root>/.finetune-work/<run id>/``, then DDP fine-tuning warm-started from the stage-1
   weights (:mod:`~relisten_spark.retrieval.finetune`): rank 0 registers
   ``models/retriever/<version>/`` with ``stage = 2``, ``parent_version``, ``stack_version``;
3. measures in ``gold.metrics`` (split ``eval``, split_mode ``time``): the fine-tuned version's
   full-ranking quality (:func:`~relisten_spark.retrieval.quality.evaluate_retriever`, model
   ``retriever:stage2``; stage 1's are model ``retriever``) and both stages' agreement with the
   ranker on the held-out teacher users (``agreement_ndcg@N``, ``ranker_top<N>_in_top<K>``,
   models ``retriever:stage1`` and ``retriever:stage2``).

Pairs: all pairs of a user's list whose ranker scores differ by more than
``retriever.finetune.margin`` (up to M(M-1)/2 = 19,900 per user at M = 200, computed as one
``[B, M, M]`` tensor per batch). All pairs rather than top-vs-rest because both measures care
about the whole order (the NDCG of the list, and which part of it reaches the top K), and the
margin drops the near-ties where the ranker's order is noise.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from relisten_spark import tracking
from relisten_spark.config import Config
from relisten_spark.features.bronze import bronze_versions, read_bronze
from relisten_spark.retrieval import nearest, quality
from relisten_spark.retrieval.finetune import STAGE, build_finetune_job, finetune, write_teacher_shards
from relisten_spark.retrieval.train import model_log
from relisten_spark.runs import new_run_id
from relisten_spark.runtime import Held, PhaseTimer
from relisten_spark.scoring.teacher import build_teacher, write_teacher
from relisten_spark.splits import holdout_cutoff

log = logging.getLogger(__name__)

WORK_FOLDER = ".finetune-work"


def agreement_figures(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``{model: {metric: value}}``: the parent's and the fine-tuned version's agreement."""
    return {quality.STAGE1: result["parent"], quality.STAGE2: result["finetuned"]}


def write_agreement(
    spark: SparkSession, cfg: Config, run_id: str, figures: dict[str, dict[str, float]]
) -> int:
    """Add the agreement rows of both stages to gold.metrics, replacing stage 1's (stage 2's
    were replaced by its full-ranking evaluation just before)."""
    values = [
        (model, metric, float(value)) for model, row in figures.items() for metric, value in row.items()
    ]
    measured = spark.createDataFrame(values, "model string, metric string, value double")
    rows = quality.metrics_rows(measured, cfg, run_id, "time")
    return quality.write_metrics(spark, cfg, rows, (quality.STAGE1,))


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """`relisten finetune-retriever`: teacher lists, DDP fine-tuning, registry, measures."""
    tracker = tracking.open_tracker(cfg)
    run_id = new_run_id(STAGE)
    timer = PhaseTimer(STAGE)
    versions = bronze_versions(cfg)
    inputs = {f"bronze.{name}": version for name, version in versions.items()}
    frames = read_bronze(spark, cfg, versions)
    cutoff = holdout_cutoff(frames.events, cfg.evaluation)
    parent = nearest.resolve_retriever(cfg.models.root, "latest", 1)
    work = Path(cfg.models.root).absolute() / WORK_FOLDER / run_id
    held = Held()
    try:
        with timer.phase("teacher"):
            teacher = build_teacher(spark, cfg, frames, cutoff, parent, held)
            inputs["silver.retriever_teacher"] = write_teacher(spark, cfg, teacher.rows)
            parts = {
                r["part"]: {"users": int(r["users"]), "rows": int(r["rows"])}
                for r in teacher.rows.groupBy("part")
                .agg(F.countDistinct("msno").alias("users"), F.count("*").alias("rows"))
                .collect()  # two parts
            }
        with timer.phase("shards"):
            history = frames.events.where(F.col("idx") < cutoff)
            folders = write_teacher_shards(spark, teacher.rows, history, parent, work)
        lineage = {
            "parent_version": parent.name,
            "stack_version": teacher.stack_version,
            "teacher_surface": teacher.surface,
            "cutoff_idx": cutoff,
            "teacher_table_version": inputs["silver.retriever_teacher"],
        }
        job = build_finetune_job(cfg, parent, folders, run_id, lineage)
        log.info(
            "%s: parent %s, stack %s, teacher users %s", STAGE, parent.name, teacher.stack_version, parts
        )
        with timer.phase("training"):
            result = finetune(job, cfg)
        with timer.phase("evaluation"):
            evaluation = quality.evaluate_retriever(spark, cfg, result["version"], quality.STAGE2)
            figures = agreement_figures(result)
            write_agreement(spark, cfg, run_id, figures)
    finally:
        held.release()
        shutil.rmtree(work, ignore_errors=True)
    summary: dict[str, Any] = {
        "run_id": run_id,
        "version": result["version"],
        **lineage,
        "teacher": parts,
        "agreement": figures,
        "epochs_run": result["epochs_run"],
        "best_epoch": result["best_epoch"],
        "evaluation": evaluation,
        "seconds": timer.seconds,
    }
    summary["mlflow"] = tracker.log(_stage_log(cfg, summary, inputs))
    return summary


def _stage_log(cfg: Config, summary: dict[str, Any], inputs: dict[str, int]) -> tracking.StageLog:
    """The MLflow run: the fine-tuning settings, both stages' agreement and the stage-2 version's
    evaluation, timings, input versions, and the model (PyTorch flavour) with its parent."""
    model = model_log(
        cfg, summary["version"], {"retriever": summary["parent_version"], "stack": summary["stack_version"]}
    )
    return tracking.StageLog(
        STAGE,
        summary["run_id"],
        params=cfg.retriever.finetune.model_dump(mode="json"),
        metrics={"agreement": summary["agreement"], "evaluation": summary["evaluation"]},
        seconds=summary["seconds"],
        input_versions=inputs,
        models=[model],
    )
