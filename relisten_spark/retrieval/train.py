"""``relisten train-retriever`` (:func:`run`): the transformer retriever trained with DDP.

1. Spark writes the users' sequences under ``<models.root>/.retriever-work/<run id>/``
   (:func:`~relisten_spark.retrieval.sequences.write_sequences`);
2. ``TorchDistributor`` starts ``retriever.num_processes`` ranks
   (:mod:`~relisten_spark.retrieval.worker`, gloo on CPU, NCCL with ``retriever.use_gpu``), each
   streaming its share of the train shards; rank 0 saves ``models/retriever/<version>/``
   (``retriever.pt``, ``items.parquet``, ``vocab.json``, metadata.json with the per-epoch history);
   with ``retriever.refit`` the ranks then train again from the start on the fit and calib rows
   for the validated run's best epoch count (:func:`~relisten_spark.retrieval.job.refit_job`), a
   second version whose metadata names the first (``refit_of``): the one evaluated and used;
3. the retriever and the baselines are evaluated by full ranking into ``gold.metrics``
   (:func:`~relisten_spark.retrieval.quality.evaluate_retriever`); the work folder is removed.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from relisten_spark import lake, tracking
from relisten_spark.config import Config
from relisten_spark.models.ddp.launch import run_ranks
from relisten_spark.retrieval.job import RetrieverJob, build_job, refit_job
from relisten_spark.retrieval.predict import load_retriever
from relisten_spark.retrieval.quality import evaluate_retriever
from relisten_spark.retrieval.sequences import write_sequences
from relisten_spark.retrieval.worker import retriever_worker
from relisten_spark.runs import new_run_id
from relisten_spark.runtime import PhaseTimer

log = logging.getLogger(__name__)

STAGE = "train-retriever"
WORK_FOLDER = ".retriever-work"
SUMMARY_KEYS = (
    "version",
    "val_ndcg@10",
    "val_recall@200",
    "best_epoch",
    "epochs_run",
    "train_seconds",
    "seconds_per_epoch",
    "sequences_per_s",
)


def train(job: RetrieverJob, cfg: Config) -> dict[str, Any]:
    """Train ``job`` on ``retriever.num_processes`` ranks; rank 0's result ``{version, ...}``."""
    r = cfg.retriever
    return run_ranks(retriever_worker, job, job.error_dir, STAGE, r.num_processes, r.local_mode, r.use_gpu)


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """`relisten train-retriever`: sequences, DDP training, registry, full-ranking evaluation."""
    tracker = tracking.open_tracker(cfg)
    run_id = new_run_id(STAGE)
    inputs = {
        f"bronze.{name}": lake.version(lake.table_path(cfg.lake.root, "bronze", name))
        for name in ("events", "songs")
    }
    work = Path(cfg.models.root).absolute() / WORK_FOLDER / run_id
    timer = PhaseTimer(STAGE)
    try:
        with timer.phase("sequences"):
            seqs = write_sequences(spark, cfg, work)
        job = build_job(cfg, seqs, run_id, {"data_source": cfg.data.source})
        log.info(
            "%s: loss %s, %d items, %d process(es)",
            STAGE,
            cfg.retriever.loss,
            job.hyper.n_items,
            cfg.retriever.num_processes,
        )
        with timer.phase("training"):
            result = train(job, cfg)
        summary: dict[str, Any] = {"run_id": run_id, "loss": cfg.retriever.loss}
        if cfg.retriever.refit:
            summary["validated_version"] = result["version"]
            with timer.phase("refit"):
                result = train(refit_job(job, seqs, result), cfg)
        summary.update({k: result[k] for k in SUMMARY_KEYS})
        with timer.phase("evaluation"):
            summary["evaluation"] = evaluate_retriever(spark, cfg, result["version"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary["seconds"] = timer.seconds
    summary["mlflow"] = tracker.log(_stage_log(cfg, run_id, summary, inputs))
    return summary


def model_log(cfg: Config, version: str, parents: dict[str, str] | None = None) -> tracking.ModelLog:
    """A retriever version as MLflow logs it: PyTorch flavour, no profile alias, its item-sequence
    input, and the engine versions it was built from (``parents``)."""
    return tracking.ModelLog(
        "retriever",
        "pytorch",
        lambda: load_retriever(cfg.models.root, version).model,
        version,
        "",
        tensors=[("items", "int64", cfg.retriever.max_len)],
        parents=parents or {},
    )


def _stage_log(
    cfg: Config, run_id: str, summary: dict[str, Any], inputs: dict[str, int]
) -> tracking.StageLog:
    """The MLflow run of a training: its config, validation and evaluation metrics, timings,
    input versions, and the model (PyTorch flavour, registered without a profile alias)."""
    model = model_log(cfg, summary["version"])
    metrics = {k: summary[k] for k in SUMMARY_KEYS if k != "version"}
    return tracking.StageLog(
        STAGE,
        run_id,
        params=cfg.retriever.model_dump(mode="json"),
        metrics={**metrics, "evaluation": summary["evaluation"]},
        seconds=summary["seconds"],
        input_versions=inputs,
        models=[model],
    )
