"""Full-ranking evaluation of the retriever and its baselines on the ``eval`` period -> gold.metrics.

Protocol (the split of :func:`relisten_spark.retrieval.sequences.holdout_parts`): every model
ranks **every** song of its catalogue for each user with ``eval`` events (no sampled negatives),
from data before the ``eval`` period:

* ``retriever`` — the trained version, its user vectors from each user's last ``max_len``
  events before the period (the model itself trained on the ``fit`` rows, or with
  ``retriever.refit`` on the ``fit`` and ``calib`` rows);
* ``retrieval:popularity`` — songs by their plays in the rows before the period;
* ``retrieval:svd`` — the SVD nearest songs of the feature job's serving factors (fit on the
  ``fit`` rows; the scoring path's fallback without silver.candidates); skipped, with a log line,
  without those tables;
* ``retrieval:svd_before`` — the same SVD fit on the rows before the period (as ALS is), so that
  the feature job's ``fit`` rows are not the only difference with the models fit on more rows:
  the ``svd`` source of ``relisten candidates``, which fits it on the whole log;
* ``retrieval:als`` — Spark ML implicit ALS fit on the rows before the period.

Every list is cut by the same exact blocked top-K (:mod:`relisten_spark.retrieval.nearest`).
A user a model has no vector for (no events before the period; for SVD, none in its fit rows)
gets the popularity list from every model alike, as the engine's candidates fill such a user
from the ``popular`` source: the figures compare what the models learned, not which of them
happens to return something for a cold user.
Already-heard songs: under the time protocol (KKBOX, synthetic) a user's songs before the period
are excluded from their list (a KKBOX pair occurs once in the log, so a heard song is never a
target); under leave-one-out (``data.source: interactions``) nothing is excluded, as RecBole
reports its sequential models.

Metrics (:mod:`relisten_spark.topn`), relevance = the distinct songs of the user's ``eval``
events, over every user with ``eval`` events (a user without a list counts as a miss):
``hr@K``, ``recall@K``, ``ndcg@K`` for K in 10, 20, 100, 200 and ``mrr``; and the headline
candidate recall ``event_recall@200`` (the share of ``eval`` events whose song is in the user's
200) and, where the log has targets, ``event_recall_relisten@200`` (events with ``target = 1``).
Rows of gold.metrics: model as above, ``split = eval``, ``profile = scoring.profile``,
``split_mode`` ``time`` or ``leave_one_out``; a new evaluation replaces these models' rows and
keeps every other row.
"""

from __future__ import annotations

import functools
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake, schemas, topn
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.retrieval import als, baselines, nearest
from relisten_spark.retrieval.sequences import holdout_parts, leave_one_out, read_inputs
from relisten_spark.runs import new_run_id
from relisten_spark.runtime import Held, PhaseTimer, checkpoint

log = logging.getLogger(__name__)

KS = (10, 20, 100, 200)
EVENT_K = 200
RETRIEVER = "retriever"
POPULARITY, SVD, ALS = "retrieval:popularity", "retrieval:svd", "retrieval:als"
SVD_BEFORE = "retrieval:svd_before"
BASE_MODELS = (RETRIEVER, POPULARITY, SVD, SVD_BEFORE, ALS)
STAGE1, STAGE2 = "retriever:stage1", "retriever:stage2"
MODELS = (*BASE_MODELS, STAGE1, STAGE2)
SPLIT = "eval"
WORK_FOLDER = ".retrieval-work"
HEADLINE = ("hr@10", "ndcg@10", "recall@200", "event_recall@200", "event_recall_relisten@200")


@dataclass(frozen=True)
class Holdout:
    """The eval period's rows, the rows before it, and the pairs to exclude (None: none)."""

    before: DataFrame
    period: DataFrame
    heard: DataFrame | None
    split_mode: str


def eval_holdout(spark: SparkSession, cfg: Config, held: Held) -> Holdout:
    """bronze.events split by the protocol: ``before`` and ``period`` (schemas.EVENTS rows) and
    ``heard`` ``[msno, song_id]`` (the period's users' songs before it, time protocol only)."""
    events, _ = read_inputs(spark, cfg)
    parted = held.persist(holdout_parts(events, cfg))
    before = parted.where(F.col("part") != SPLIT)
    period = parted.where(F.col("part") == SPLIT)
    if leave_one_out(cfg):
        return Holdout(before, period, None, "leave_one_out")
    users = period.select("msno").distinct()
    heard = held.persist(nearest.heard_pairs(before, users))
    return Holdout(before, period, heard, "time")


def factor_lists(
    users: DataFrame, items: DataFrame, hold: Holdout, path: str, k: int, block_size: int
) -> DataFrame:
    """A factor model's lists (:data:`nearest.TOP_K_SCHEMA`) for the period's users."""
    wanted = users.join(hold.period.select("msno").distinct(), "msno")
    return nearest.factor_lists(wanted, items, hold.heard, path, k, block_size)


def model_lists(
    spark: SparkSession, cfg: Config, version: str, hold: Holdout, work: Path, name: str = RETRIEVER
) -> dict[str, DataFrame]:
    """``{model: lists}``: the retriever's (as model ``name``) and, for :data:`RETRIEVER`, each
    baseline's top :data:`EVENT_K` (or max K), every period user's (module docstring: the
    popularity list for a user a model has no vector for)."""
    k, block = max(*KS, EVENT_K), cfg.scoring.block_size
    folder = nearest.resolve_retriever(cfg.models.root, version)
    period_users = hold.period.select("msno").distinct()
    users, items = baselines.popularity_vectors(hold.before, period_users)
    popular = checkpoint(factor_lists(users, items, hold, str(work / "popularity"), k, block))
    top = nearest.retriever_lists(
        spark, cfg.models.root, folder, hold.before, period_users, hold.heard is not None, k, block
    )
    out = {name: with_fallback(top, popular)}
    if name != RETRIEVER:
        return out
    out[POPULARITY] = popular
    try:
        users, items = baselines.svd_vectors(spark, cfg.lake.root, cfg.scoring.profile)
        out[SVD] = with_fallback(factor_lists(users, items, hold, str(work / "svd"), k, block), popular)
    except InputError as exc:
        log.info("retrieval evaluation: no SVD baseline (%s)", exc)
    users, items = baselines.svd_fit_vectors(hold.before, cfg.features, "rows before the period")
    out[SVD_BEFORE] = with_fallback(
        factor_lists(users, items, hold, str(work / "svd_before"), k, block), popular
    )
    users, items = als.als_vectors(hold.before)
    out[ALS] = with_fallback(factor_lists(users, items, hold, str(work / "als"), k, block), popular)
    return out


def with_fallback(lists: DataFrame, fallback: DataFrame) -> DataFrame:
    """``lists`` plus the ``fallback`` lists of the users without one in ``lists`` (both
    :data:`nearest.TOP_K_SCHEMA`); ``lists`` is materialised first, so that its top-K runs once
    for the union and the anti-join."""
    lists = checkpoint(lists)
    missing = fallback.join(lists.select("msno").distinct(), "msno", "left_anti")
    return lists.unionByName(missing)


def measure(lists: DataFrame, hold: Holdout, models: list[str]) -> DataFrame:
    """``[model, metric, value]`` of ``lists`` ``[model, msno, song_id, score, rank]``."""
    names = hold.period.sparkSession.createDataFrame([(m,) for m in models], "model string")
    relevant = hold.period.select("msno", "song_id").distinct().crossJoin(names)
    events = hold.period.select("msno", "song_id", "target").crossJoin(names)
    parts = [
        topn.ranking_metrics(lists, relevant, KS, ["model"]),
        topn.event_recall(lists, events, EVENT_K, ["model"]),
    ]
    if hold.split_mode == "time":
        relisten = topn.event_recall(lists, events.where(F.col("target") == 1), EVENT_K, ["model"])
        parts.append(relisten.withColumn("metric", F.lit(f"event_recall_relisten@{EVENT_K}")))
    return functools.reduce(DataFrame.unionByName, parts)


def metrics_rows(measured: DataFrame, cfg: Config, run_id: str, split_mode: str) -> DataFrame:
    """gold.metrics rows (schemas.METRICS) of ``[model, metric, value]``."""
    values = {
        "run_id": F.lit(run_id),
        "model": F.col("model"),
        "profile": F.lit(cfg.scoring.profile),
        "split": F.lit(SPLIT),
        "metric": F.col("metric"),
        "value": F.col("value"),
        "split_mode": F.lit(split_mode),
    }
    return measured.select(*[values[f.name].cast(f.dataType).alias(f.name) for f in schemas.METRICS.fields])


def kept_rows(spark: SparkSession, cfg: Config) -> DataFrame | None:
    """The retrieval rows of gold.metrics (models :data:`MODELS`), materialised, so that a stage
    rewriting the table can keep them; None without the table."""
    path = lake.table_path(cfg.lake.root, "gold", "metrics")
    if not lake.exists(path):
        return None
    return checkpoint(lake.read(spark, path).where(F.col("model").isin(*MODELS)))


def write_metrics(
    spark: SparkSession, cfg: Config, rows: DataFrame, models: tuple[str, ...] = BASE_MODELS
) -> int:
    """Replace the rows of ``models`` in gold.metrics with ``rows``; the other rows stay."""
    path = lake.table_path(cfg.lake.root, "gold", "metrics")
    if lake.exists(path):
        others = lake.read(spark, path).where(~F.col("model").isin(*models))
        rows = rows.unionByName(checkpoint(others))
    return lake.write(spark, checkpoint(rows), path, mode="overwrite")


def evaluate_retriever(
    spark: SparkSession, cfg: Config, version: str = "latest", name: str = RETRIEVER
) -> dict[str, Any]:
    """Evaluate the retriever ``version`` and the baselines on the eval period (module docstring),
    write gold.metrics; return ``run_id``, ``metrics_version``, ``split_mode`` and per model the
    :data:`HEADLINE` metrics. With another model ``name`` (a fine-tuned version: :data:`STAGE2`)
    only that version is measured and only its rows are replaced."""
    run_id = new_run_id("evaluate-retriever")
    timer = PhaseTimer("evaluate-retriever")
    work = Path(cfg.models.root).absolute() / WORK_FOLDER / run_id
    held = Held()
    try:
        with timer.phase("lists"):
            hold = eval_holdout(spark, cfg, held)
            per_model = model_lists(spark, cfg, version, hold, work, name)
            tagged = [df.withColumn("model", F.lit(name)) for name, df in per_model.items()]
            lists = checkpoint(functools.reduce(DataFrame.unionByName, tagged))
        with timer.phase("metrics"):
            measured = checkpoint(measure(lists, hold, list(per_model)))
            rows = metrics_rows(measured, cfg, run_id, hold.split_mode)
            version_written = write_metrics(spark, cfg, rows, BASE_MODELS if name == RETRIEVER else (name,))
    finally:
        held.release()
        shutil.rmtree(work, ignore_errors=True)
    headline: dict[str, dict[str, float]] = {}
    for row in measured.where(F.col("metric").isin(*HEADLINE)).collect():  # models x 5 rows
        headline.setdefault(row["model"], {})[row["metric"]] = round(float(row["value"]), 4)
    log.info("retrieval evaluation (%s): %s", hold.split_mode, headline)
    return {
        "run_id": run_id,
        "metrics_version": version_written,
        "split_mode": hold.split_mode,
        "models": headline,
        "seconds": timer.seconds,
    }
