"""``relisten evaluate``: metrics of every model's holdout predictions into ``gold.metrics``,
and the HTML report of them (:mod:`~relisten_spark.evaluation.report`) under the lake.

First the popularity baseline (:mod:`relisten_spark.models.baseline`) is trained on
silver.features for every profile that gold.predictions holds another model of, and its
predictions replace the baseline's rows there: every model is compared with it, whichever
training stages ran. Then, for every ``(model, profile, split_mode)`` in gold.predictions and
each of its ``calib`` and ``eval`` parts, the metrics of :mod:`relisten_spark.metrics`
(``split_mode`` says ``time``, the protocol of SPEC.md, or ``random``, the thesis-style split
that exists only to reproduce its figures). On synthetic data with a ``truth.csv`` each group
also gets ``oracle_roc_auc``, the AUC of the true probabilities on the same rows.

gold.predictions holds the latest predictions of each model and profile, so each run
overwrites gold.metrics as a whole with the metrics of all of them under one ``run_id``: a
re-run gives the same rows (new run id) and earlier runs stay readable as older Delta versions.
The ``topn:*`` rows of ``relisten backtest`` and the retrieval rows of ``train-retriever``
(:data:`relisten_spark.retrieval.quality.MODELS`) are kept as they are.
"""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake, schemas, tracking
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.evaluation import backtest, oracle, report
from relisten_spark.metrics import binary_metrics
from relisten_spark.models.baseline import train_baseline
from relisten_spark.predictions import predictions_path, read_predictions
from relisten_spark.retrieval import quality
from relisten_spark.runs import new_run_id
from relisten_spark.runtime import POPULARITY

log = logging.getLogger(__name__)

GROUPS = ["model", "profile", "split_mode", "eval_split"]
SUMMARY_METRICS = ("roc_auc", "pr_auc", "logloss", oracle.ORACLE_METRIC)


def metrics_path(cfg: Config) -> str:
    return lake.table_path(cfg.lake.root, "gold", "metrics")


def model_profiles(spark: SparkSession, cfg: Config) -> list[str]:
    """The profiles gold.predictions holds a model other than the baseline of."""
    models = read_predictions(spark, cfg).where(F.col("model") != POPULARITY)
    return sorted(r["profile"] for r in models.select("profile").distinct().collect())  # a few profiles


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """Compute and write gold.metrics; return a summary with the eval metrics per model/profile."""
    source = predictions_path(cfg)
    if not lake.exists(source):
        raise InputError(f"no predictions at {source} (run train-gbdt or train-nets first)")
    tracker = tracking.open_tracker(cfg)
    run_id = new_run_id("evaluate")
    baseline = train_baseline(spark, cfg, model_profiles(spark, cfg), run_id)
    preds = read_predictions(spark, cfg).where(F.col("eval_split").isin("calib", "eval"))
    metrics = binary_metrics(preds, GROUPS)
    with_oracle = oracle.truth_available(cfg)
    if with_oracle:
        truth = oracle.read_truth(spark, oracle.truth_path(cfg))
        metrics = metrics.unionByName(oracle.oracle_metrics(truth, preds, GROUPS))
    out = metrics.select(
        *[
            (F.lit(run_id) if f.name == "run_id" else F.col("eval_split" if f.name == "split" else f.name))
            .cast(f.dataType)
            .alias(f.name)
            for f in schemas.METRICS.fields
        ]
    )
    path = metrics_path(cfg)
    topn = backtest.topn_rows(spark, cfg)  # the backtest's rows stay
    retrieval = quality.kept_rows(spark, cfg)  # and the retriever's (train-retriever writes them)
    for kept in (topn, retrieval):
        out = out if kept is None else out.unionByName(kept)
    version = lake.write(spark, out, path, mode="overwrite")
    written = (
        lake.read(spark, path)
        .where((F.col("split") == "eval") & F.col("metric").isin(*SUMMARY_METRICS))
        .collect()  # models x profiles x 4 rows
    )
    evaluated: dict[str, dict[str, str]] = {}
    for r in sorted(written, key=lambda r: (r["model"], r["profile"], r["split_mode"], r["metric"])):
        key = f"{r['model']}/{r['profile']}" + (
            "" if r["split_mode"] == "time" else f" ({r['split_mode']} split)"
        )
        evaluated.setdefault(key, {})[r["metric"]] = "n/a" if r["value"] is None else f"{r['value']:.4f}"
    log.info("gold.metrics version %d: %s", version, evaluated)
    page = report.write_report(spark, cfg, run_id)
    tracked = tracker.log(_stage_log(spark, cfg, run_id, version, page)) if tracker.enabled else {}
    return {
        "run_id": run_id,
        "metrics_version": version,
        "models": len(evaluated),
        "model_versions": {f"{POPULARITY}/{profile}": v for profile, v in baseline.items()},
        "oracle": with_oracle,
        "eval": evaluated,
        "report": page,
        "mlflow": tracked,
    }


def _stage_log(spark: SparkSession, cfg: Config, run_id: str, version: int, page: str) -> tracking.StageLog:
    """The MLflow view of an evaluate run: every gold.metrics row of the run as a metric
    ``<model>.<profile>[.<split_mode> split].<split>.<metric>``, and the HTML report."""
    rows = lake.read(spark, metrics_path(cfg)).where(F.col("run_id") == run_id).collect()  # models x 16
    metrics = {}
    for r in rows:
        mode = "" if r["split_mode"] == "time" else f".{r['split_mode']}_split"
        metrics[f"{r['model']}.{r['profile']}{mode}.{r['split']}.{r['metric']}"] = r["value"]
    return tracking.StageLog(
        "evaluate",
        run_id,
        params={"evaluation": cfg.evaluation.model_dump(mode="json")},
        metrics=metrics,
        input_versions={"gold.predictions": lake.version(predictions_path(cfg))},
        tags={"relisten.metrics_version": str(version)},
        files=[page],
    )
