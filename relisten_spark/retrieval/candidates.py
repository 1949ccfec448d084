"""``relisten candidates``: every user's ``scoring.candidates`` candidate songs -> silver.candidates.

Sources (``scoring.candidate_sources``: source -> quota, in priority order; 0 = off), each ranking
every song for every user of ``bronze.events`` from the whole log by the exact blocked top-K of
:mod:`relisten_spark.retrieval.nearest`:

* ``retriever`` — the newest retriever version: the fine-tuned one (``finetune-retriever``,
  stage 2) when it is newer than the pretrained one (``train-retriever``, stage 1);
  ``retriever.candidates_stage`` pins a stage; user vectors from each user's last
  ``retriever.max_len`` events;
* ``svd`` — the SVD nearest songs: ``U diag(s) V^T`` of the feature job's user x song SVD (its
  rank, sketch and solver) fit on the whole log, as ALS is (the ``features`` factors stop at the
  training cutoff: they would miss the latest listens and every user who came after it);
* ``als`` — Spark ML implicit ALS fit on the log;
* ``popular`` — songs by plays.

Already-heard songs (the user's songs anywhere in the log) are excluded when a configured
surface excludes them (``scoring.surfaces.<name>.exclude_heard``; the default story surface
does): a surface that allows them still gets unheard songs only from this table.

The mix: first each source's top ``quota`` songs, source by source in the configured order,
then, while a user has fewer than ``scoring.candidates``, the sources' next songs (by their
rank, sources in order); a song offered by several sources counts once, for the first. Rows:
schemas.CANDIDATES ``[run_date, msno, song_id, source, rank, score]``, ``rank`` 1..K per user,
``score`` the source's own score; the ``run_date`` partition (``scoring.run_date``, default
today) is replaced atomically. ``relisten score`` reads it.
"""

from __future__ import annotations

import functools
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from relisten_spark import lake, schemas
from relisten_spark.config import Config
from relisten_spark.errors import ConfigError
from relisten_spark.retrieval import als, baselines, nearest
from relisten_spark.retrieval.sequences import read_inputs
from relisten_spark.runs import new_run_id
from relisten_spark.runtime import Held, PhaseTimer, checkpoint

log = logging.getLogger(__name__)

TABLE = "candidates"
WORK_FOLDER = ".candidates-work"


def candidates_path(cfg: Config) -> str:
    return lake.table_path(cfg.lake.root, "silver", TABLE)


def resolve_run_date(cfg: Config) -> str:
    """``scoring.run_date`` or today's UTC date, as YYYY-MM-DD."""
    return (cfg.scoring.run_date or datetime.now(UTC).date()).isoformat()


def quotas(cfg: Config) -> dict[str, int]:
    """The sources switched on, in priority order, with their quotas."""
    chosen: dict[str, int] = {s: q for s, q in cfg.scoring.candidate_sources.items() if q > 0}
    if not chosen:
        raise ConfigError("scoring.candidate_sources switches every source off: give one a quota")
    return chosen


def candidates_stage(cfg: Config) -> int | None:
    """The retriever stage ``retriever.candidates_stage`` pins (None: the newest version)."""
    stage = cfg.retriever.candidates_stage
    return None if stage == "latest" else int(stage)


def excludes_heard(cfg: Config) -> bool:
    """True when a configured surface leaves out the songs a user already heard."""
    return any(surface.exclude_heard for surface in cfg.scoring.surfaces.values())


def source_lists(
    spark: SparkSession, cfg: Config, events: DataFrame, heard: DataFrame | None, work: Path
) -> tuple[dict[str, DataFrame], dict[str, str]]:
    """``({source: [msno, song_id, score, rank]}, {model: version})`` for the sources switched on,
    each list ``scoring.candidates`` long."""
    k, block = cfg.scoring.candidates, cfg.scoring.block_size
    users = events.select("msno").distinct()
    lists: dict[str, DataFrame] = {}
    versions: dict[str, str] = {}
    for source in quotas(cfg):
        if source == "retriever":
            folder = nearest.resolve_retriever(cfg.models.root, "latest", candidates_stage(cfg))
            versions["retriever"] = folder.name
            inputs = nearest.retriever_inputs(spark, folder, events, exclude_heard=heard is not None)
            lists[source] = nearest.retriever_top_k(inputs, cfg.models.root, folder.name, k, block)
            continue
        if source == "svd":
            user_vectors, items = baselines.svd_fit_vectors(events, cfg.features, "the whole log")
        elif source == "als":
            user_vectors, items = als.als_vectors(events)
        else:
            user_vectors, items = baselines.popularity_vectors(events)
        wanted = user_vectors.join(users, "msno")
        lists[source] = nearest.factor_lists(wanted, items, heard, str(work / source), k, block)
    return lists, versions


def mix(lists: dict[str, DataFrame], quota: dict[str, int], k: int) -> DataFrame:
    """``[msno, song_id, source, rank, score]``: each user's ``k`` candidates from ``lists``
    (``{source: [msno, song_id, score, rank]}``) by ``quota`` (module docstring)."""
    if len(lists) == 1:  # one source: its own ranking is the mix
        [(source, ranked_list)] = lists.items()
        return ranked_list.where(F.col("rank") <= F.lit(k)).select(
            "msno", "song_id", F.lit(source).alias("source"), "rank", F.col("score").cast("double")
        )
    order = {source: i for i, source in enumerate(quota)}
    tagged = [
        df.select(
            "msno",
            "song_id",
            "score",
            F.col("rank").alias("_r"),
            F.lit(source).alias("source"),
            F.lit(order[source]).alias("_o"),
            (F.col("rank") <= F.lit(quota[source])).alias("_in"),
        )
        for source, df in lists.items()
    ]
    rows = functools.reduce(DataFrame.unionByName, tagged)
    inside = F.col("_in")
    priority = [
        F.when(inside, 0).otherwise(1),
        F.when(inside, F.col("_o")).otherwise(F.col("_r")),
        F.when(inside, F.col("_r")).otherwise(F.col("_o")),
    ]
    ranked = rows.select("*", *[p.alias(f"_p{i}") for i, p in enumerate(priority)])
    keys = ["_p0", "_p1", "_p2", "song_id"]
    first = ranked.withColumn("_n", F.row_number().over(Window.partitionBy("msno", "song_id").orderBy(*keys)))
    per_user = Window.partitionBy("msno").orderBy(*keys)
    return (
        first.where(F.col("_n") == 1)
        .withColumn("rank", F.row_number().over(per_user).cast("int"))
        .where(F.col("rank") <= F.lit(k))
        .select("msno", "song_id", "source", "rank", F.col("score").cast("double"))
    )


def candidates_frame(mixed: DataFrame, run_date: str) -> DataFrame:
    """schemas.CANDIDATES rows of :func:`mix`'s output."""
    values = {"run_date": F.lit(run_date).cast("date")}
    return mixed.select(
        *[values.get(f.name, F.col(f.name)).cast(f.dataType).alias(f.name) for f in schemas.CANDIDATES.fields]
    )


def write_candidates(spark: SparkSession, cfg: Config, rows: DataFrame, run_date: str) -> int:
    """Replace the ``run_date`` partition of silver.candidates with ``rows`` (one commit)."""
    return lake.write(
        spark, rows, candidates_path(cfg), partition_by=["run_date"], replace_where={"run_date": run_date}
    )


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """``relisten candidates``: the sources' lists, the mix, the ``run_date`` partition."""
    timer = PhaseTimer("candidates")
    run_id = new_run_id("candidates")
    run_date = resolve_run_date(cfg)
    quota = quotas(cfg)
    work = Path(cfg.models.root).absolute() / WORK_FOLDER / run_id
    held = Held()
    try:
        events, _ = read_inputs(spark, cfg)
        events = events.where(F.col("msno").isNotNull() & F.col("song_id").isNotNull())
        if set(quota) != {"retriever"}:  # the factor sources read the log several times
            events = held.persist(events)
        heard = held.persist(events.select("msno", "song_id").distinct()) if excludes_heard(cfg) else None
        with timer.phase("lists"):
            lists, versions = source_lists(spark, cfg, events, heard, work)
            rows = checkpoint(candidates_frame(mix(lists, quota, cfg.scoring.candidates), run_date))
        with timer.phase("write"):
            version = write_candidates(spark, cfg, rows, run_date)
        per_source = {r["source"]: int(r["count"]) for r in rows.groupBy("source").count().collect()}  # <= 4
        [totals] = rows.agg(F.count("*").alias("rows"), F.countDistinct("msno").alias("users")).collect()
    finally:
        held.release()
        shutil.rmtree(work, ignore_errors=True)
    log.info("candidates %s: %d users, %s", run_date, totals["users"], per_source)
    return {
        "run_id": run_id,
        "run_date": run_date,
        "model_versions": versions,
        "rows": {"candidates": int(totals["rows"]), "users": int(totals["users"])},
        "candidate_sources": per_source,
        "heard_excluded": heard is not None,
        "tables": {"silver.candidates": f"{candidates_path(cfg)} (version {version})"},
        "seconds": timer.seconds,
    }


def read_candidates(spark: SparkSession, cfg: Config, run_date: str) -> DataFrame | None:
    """The ``run_date`` partition of silver.candidates ``[msno, song_id, source, rank, score]``;
    None (with a log line) when the table or the partition is absent."""
    path = candidates_path(cfg)
    if lake.exists(path):
        rows = lake.read(spark, path, where={"run_date": run_date}).drop("run_date")
        if rows.limit(1).count():
            return rows
    log.info("no silver.candidates for %s (run `relisten candidates`): using the SVD nearest songs", run_date)
    return None
