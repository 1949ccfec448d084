"""``relisten backtest``: the top-N lists as of the holdout cutoff, measured against the ``eval``
period, and the beyond-accuracy measures of those lists and of the production lists.

A command of its own rather than a mode of ``evaluate``: it is a scoring run (candidates,
serving features, the ensemble over every candidate), minutes where ``evaluate`` takes seconds,
and ``evaluate`` can re-render the report without it. It writes only its rows of
``gold.metrics`` (models ``topn:*``); ``evaluate`` keeps them when it rewrites the table.

The scoring path as of the holdout cutoff ``c`` (:func:`relisten_spark.splits.holdout_cutoff`):

* candidates (:func:`~relisten_spark.scoring.score.build_pairs`) from the events with
  ``idx < c`` (heard songs, plays, the catalog) and the serving SVD factors (fit on the fit
  rows, ``idx < c``), for the users with at least one ``eval`` event;
* serving features of an event at ``idx = c`` (:func:`~relisten_spark.scoring.snapshot.pair_features`
  with ``as_of = c``): state tables of the serving feature rows with ``idx < c``, the encoders
  fit on the fit rows;
* the latest stack of ``scoring.profile`` and its base models (trained on ``fit`` rows; the
  stack's weights on ``calib`` rows, which lie between the cutoff and the ``eval`` period);
* every candidate scored once (:func:`~relisten_spark.scoring.rank.score_pairs`), then each
  lever setting picks its top-N from those scores (:func:`~relisten_spark.scoring.rank.top_n_positions`):
  ``configured`` (the surfaces' own ``popularity_penalty`` / ``mmr_*``) and the settings of
  :data:`SETTINGS`.

Measures (``gold.metrics``, profile ``scoring.profile``, split_mode ``time``):

* split ``eval``: :func:`relisten_spark.topn.ranking_metrics` (``hr@K``, ``recall@K``,
  ``ndcg@K``, ``mrr``; relevant = the user's eval events) and the same with a ``target_``
  prefix (relevant = eval events with ``target = 1``), over users with at least one relevant
  event, K = 10 and each surface's N; :func:`relisten_spark.beyond_accuracy.list_measures`
  against the log before the cutoff; ``overlap_<surface>``;
* split ``production``: the beyond-accuracy measures of the latest ``run_date`` of each
  ``gold.recs_<surface>`` against the whole log.

Model names: ``topn:<surface>`` for the configured setting, ``topn:<surface>:<setting>`` for each
setting of the trade-off (``base``, ``pop0.05``, ``mmr-genre0.3``, ...).

The funnel (``evaluation.funnel_sources``): the same lists (configured setting) and split ``eval``
measures with the ranker fed by another candidate source, each as of the cutoff, models
``funnel:<surface>:<source>``: ``svd`` (the lists above), ``stage1`` / ``stage2`` (the latest
retriever of that stage: its top ``scoring.candidates + scoring.candidate_margin`` songs from the
user's last ``retriever.max_len`` events before the cutoff, heard songs left out when a surface
leaves them out, as ``relisten candidates`` does).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake, schemas
from relisten_spark.beyond_accuracy import SongReference, list_measures, song_reference, surface_overlap
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.features.bronze import BronzeFrames, read_bronze
from relisten_spark.retrieval import nearest
from relisten_spark.retrieval.candidates import excludes_heard
from relisten_spark.runs import new_run_id
from relisten_spark.runtime import Held, PhaseTimer, checkpoint
from relisten_spark.scoring import rank, score
from relisten_spark.scoring.asof import score_as_of
from relisten_spark.scoring.levers import Levers
from relisten_spark.splits import assign_eval_split, holdout_cutoff
from relisten_spark.topn import ranking_metrics

log = logging.getLogger(__name__)

PREFIX = "topn"
FUNNEL = "funnel"
CONFIGURED = "configured"
# the trade-off's settings: a popularity penalty, MMR over each similarity, and both (svd_k is
# set to features.svd_song_k by setting_rules)
SETTINGS = (
    Levers(),
    *[Levers(popularity_penalty=p) for p in (0.02, 0.05, 0.1, 0.2)],
    *[Levers(mmr_weight=w, mmr_similarity=s) for s in ("artist", "genre", "svd") for w in (0.1, 0.3)],
    Levers(popularity_penalty=0.05, mmr_weight=0.1, mmr_similarity="genre"),
)
USERS_PER_BUCKET = 256  # users re-ranked in one call of the lever settings
LIST_SCHEMA = "surface string, setting string, msno string, song_id string, rank int"


def metrics_path(cfg: Config) -> str:
    return lake.table_path(cfg.lake.root, "gold", "metrics")


def owned(model: Column) -> Column:
    """True for the models the backtest writes (``topn:*``, ``funnel:*``)."""
    return model.startswith(f"{PREFIX}:") | model.startswith(f"{FUNNEL}:")


def topn_rows(spark: SparkSession, cfg: Config) -> DataFrame | None:
    """The backtest's rows of gold.metrics (:func:`owned`), materialised (so the table can be
    rewritten while they are kept); None without the table. ``evaluate`` carries them over."""
    path = metrics_path(cfg)
    if not lake.exists(path):
        return None
    return checkpoint(lake.read(spark, path).where(owned(F.col("model"))))


# ---- the lists -----------------------------------------------------------------------------
def setting_rules(cfg: Config) -> dict[str, dict[str, rank.SurfaceRule]]:
    """``{setting: {surface: rule}}``: the configured rules and each of :data:`SETTINGS`."""
    configured = score.surface_rules(cfg)
    out = {CONFIGURED: configured}
    for setting in SETTINGS:
        levers = replace(setting, svd_k=cfg.features.svd_song_k)
        out[levers.label()] = {
            name: rank.SurfaceRule(rule.top_n, rule.max_per_artist, levers)
            for name, rule in configured.items()
        }
    return out


def _pick_fn(
    settings: Mapping[str, Mapping[str, rank.SurfaceRule]],
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The task side of :func:`pick_lists`: a bucket of users' candidates -> their lists per
    setting (every user of the bucket at once)."""

    def pick(frame: pd.DataFrame) -> pd.DataFrame:
        out = []
        frame = frame.drop(columns="_bucket").reset_index(drop=True)
        for setting, rules in settings.items():
            kept = rank.top_n_positions(frame, rules)
            rows = frame.iloc[kept["pos"].to_numpy()]
            out.append(
                pd.DataFrame(
                    {
                        "surface": rows["surface"].to_numpy(),
                        "setting": setting,
                        "msno": rows["msno"].to_numpy(),
                        "song_id": rows["song_id"].to_numpy(),
                        "rank": kept["rank"].to_numpy(dtype="int32"),
                    }
                )
            )
        return pd.concat(out, ignore_index=True)

    return pick


def pick_lists(
    scored: DataFrame, settings: Mapping[str, Mapping[str, rank.SurfaceRule]], buckets: int = 1
) -> DataFrame:
    """``[surface, setting, msno, song_id, rank]``: every setting's top-N per surface and user
    from ``scored`` ``[surface, msno, song_id, artist_key, score, <lever columns>]`` (the scores
    are computed once; each setting only re-ranks them). The users are hashed into ``buckets``
    groups, each re-ranked in one call (the levers' greedy pick is vectorised over users)."""
    bucket = F.pmod(F.xxhash64("msno"), F.lit(buckets)).alias("_bucket")
    grouped = scored.select(bucket, *scored.columns).groupBy("_bucket")
    return grouped.applyInPandas(_pick_fn(settings), LIST_SCHEMA)


def funnel_lists(
    spark: SparkSession,
    cfg: Config,
    frames: BronzeFrames,
    cutoff: int,
    users: DataFrame,
    lists: DataFrame,
    held: Held,
    buckets: int,
) -> tuple[DataFrame | None, dict[str, str]]:
    """``([surface, setting, msno, song_id, rank], {source: retriever version})``: the configured
    setting's lists of ``users`` from each of ``evaluation.funnel_sources`` (module docstring),
    ``setting`` the source; ``lists`` (:func:`pick_lists` of the SVD candidates) give ``svd``'s;
    ``buckets`` as :func:`pick_lists`'. None when no source is configured."""
    configured = {CONFIGURED: score.surface_rules(cfg)}
    history = frames.events.where(F.col("idx") < cutoff)
    k = cfg.scoring.candidates + cfg.scoring.candidate_margin
    parts: list[DataFrame] = []
    versions: dict[str, str] = {}
    for source in dict.fromkeys(cfg.evaluation.funnel_sources):
        if source == "svd":
            part = lists.where(F.col("setting") == CONFIGURED)
        else:
            folder = nearest.resolve_retriever(cfg.models.root, "latest", int(source.removeprefix("stage")))
            versions[source] = folder.name
            top = nearest.retriever_lists(
                spark, cfg.models.root, folder, history, users, excludes_heard(cfg), k, cfg.scoring.block_size
            )
            stored = held.persist(top.select("msno", "song_id", "rank"))
            scored = score_as_of(spark, cfg, frames, cutoff, users, held, stored)
            part = held.persist(pick_lists(scored, configured, buckets))
            log.info(
                "backtest funnel: %d list rows from %s (retriever %s)", part.count(), source, folder.name
            )
        parts.append(part.withColumn("setting", F.lit(source)))
    if not parts:
        return None, versions
    return functools.reduce(DataFrame.unionByName, parts), versions


# ---- the measures --------------------------------------------------------------------------
def eval_events(events: DataFrame, cfg: Config) -> DataFrame:
    """``[msno, song_id, target]``: the train rows of the time holdout's ``eval`` part."""
    time_split = cfg.evaluation.model_copy(update={"split": "time"})
    parts = assign_eval_split(events.where(F.col("split") == "train"), time_split)
    return parts.where(F.col("eval_split") == "eval").select("msno", "song_id", "target")


def accuracy(lists: DataFrame, events: DataFrame, ks: Sequence[int]) -> DataFrame:
    """``[surface, setting, metric, value]``: ranking metrics with relevant = the eval events,
    then with relevant = the eval events of ``target = 1`` (metric names prefixed ``target_``)."""
    groups = lists.select("surface", "setting").distinct()
    plays = events.select("msno", "song_id").distinct()
    liked = events.where(F.col("target") == 1).select("msno", "song_id").distinct()
    out = ranking_metrics(lists, groups.crossJoin(plays), ks, ["surface", "setting"])
    target = ranking_metrics(lists, groups.crossJoin(liked), ks, ["surface", "setting"])
    return out.unionByName(target.withColumn("metric", F.concat(F.lit("target_"), F.col("metric"))))


def beyond(lists: DataFrame, reference: SongReference) -> DataFrame:
    """``[surface, setting, metric, value]``: list measures and the overlap between surfaces."""
    measures = list_measures(lists, reference, ["surface", "setting"])
    return measures.unionByName(surface_overlap(lists, ["setting"]).select(*measures.columns))


def production_lists(spark: SparkSession, cfg: Config) -> DataFrame | None:
    """``[surface, setting, msno, song_id, rank]`` of the latest ``run_date`` of each
    gold.recs_<surface> (setting ``configured``); None when no surface has a table."""
    frames = []
    for name in cfg.scoring.surfaces:
        path = score.recs_path(cfg, name)
        if not lake.exists(path):
            log.warning("backtest: %s not found: no production measures for surface %s", path, name)
            continue
        recs = lake.read(spark, path)
        [(latest,)] = recs.agg(F.max("run_date")).collect()  # one value
        frames.append(
            recs.where(F.col("run_date") == latest).select(
                F.lit(name).alias("surface"), F.lit(CONFIGURED).alias("setting"), "msno", "song_id", "rank"
            )
        )
    return functools.reduce(DataFrame.unionByName, frames) if frames else None


def metric_rows(measured: DataFrame, cfg: Config, run_id: str, split: str, funnel: bool = False) -> DataFrame:
    """gold.metrics rows (schemas.METRICS) of ``[surface, setting, metric, value]``; with
    ``funnel`` the setting column holds the candidate source (models ``funnel:*``)."""
    prefix = F.lit(FUNNEL if funnel else PREFIX)
    model = F.concat_ws(":", prefix, "surface", "setting")
    if not funnel:  # the configured setting is named by its surface alone
        model = F.when(F.col("setting") == CONFIGURED, F.concat_ws(":", prefix, "surface")).otherwise(model)
    values = {
        "run_id": F.lit(run_id),
        "model": model,
        "profile": F.lit(cfg.scoring.profile),
        "split": F.lit(split),
        "metric": F.col("metric"),
        "value": F.col("value"),
        "split_mode": F.lit("time"),
    }
    return measured.select(*[values[f.name].cast(f.dataType).alias(f.name) for f in schemas.METRICS.fields])


def write_metrics(spark: SparkSession, cfg: Config, rows: DataFrame) -> int:
    """Replace the backtest's rows of gold.metrics (:func:`owned`) with ``rows``; the other rows
    stay."""
    path = metrics_path(cfg)
    if lake.exists(path):
        others = lake.read(spark, path).where(~owned(F.col("model")))
        rows = rows.unionByName(checkpoint(others))
    return lake.write(spark, checkpoint(rows), path, mode="overwrite")


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """``relisten backtest``: lists as of the cutoff, their measures and the production lists'."""
    timer = PhaseTimer("backtest")
    started = time.perf_counter()
    run_id = new_run_id("backtest")
    frames = read_bronze(spark, cfg)
    cutoff = holdout_cutoff(frames.events, cfg.evaluation)
    held = Held()
    try:
        events = held.persist(eval_events(frames.events, cfg))
        users = held.persist(events.select("msno").distinct())
        n_users = users.count()
        if not n_users:
            raise InputError("bronze.events has no eval rows: nothing to backtest")
        with timer.phase("scoring"):
            scored = score_as_of(spark, cfg, frames, cutoff, users, held)
        with timer.phase("lists"):
            buckets = max(1, -(-n_users // USERS_PER_BUCKET))
            lists = held.persist(pick_lists(scored, setting_rules(cfg), buckets))
            n_lists = lists.count()
        with timer.phase("funnel"):
            funnel, funnel_versions = funnel_lists(spark, cfg, frames, cutoff, users, lists, held, buckets)
        ks = sorted({10, *[r.top_n for r in score.surface_rules(cfg).values()]})
        with timer.phase("measures"):
            past = song_reference(frames.events.where(F.col("idx") < cutoff), frames.songs)
            measured = accuracy(lists, events, ks).unionByName(beyond(lists, past))
            rows = metric_rows(measured, cfg, run_id, "eval")
            if funnel is not None:
                measured = accuracy(funnel, events, ks).unionByName(beyond(funnel, past))
                rows = rows.unionByName(metric_rows(measured, cfg, run_id, "eval", funnel=True))
            production = production_lists(spark, cfg)
            if production is not None:
                whole = song_reference(frames.events, frames.songs)
                rows = rows.unionByName(metric_rows(beyond(production, whole), cfg, run_id, "production"))
            version = write_metrics(spark, cfg, rows)
    finally:
        held.release()
    timer.seconds["total"] = round(time.perf_counter() - started, 3)
    return {
        "run_id": run_id,
        "cutoff_idx": cutoff,
        "metrics_version": version,
        "rows": {"eval_users": n_users, "list_rows": n_lists},
        "funnel_retriever_versions": funnel_versions,
        "summary": summary(spark, cfg, run_id, ks[-1]),
        "seconds": timer.seconds,
    }


def summary(spark: SparkSession, cfg: Config, run_id: str, k: int) -> dict[str, dict[str, float]]:
    """``{model/split: {metric: value}}`` of the headline measures just written."""
    keep = [f"ndcg@{k}", f"hr@{k}", "catalog_coverage", "popularity_share"]
    rows = (
        lake.read(spark, metrics_path(cfg))
        .where((F.col("run_id") == run_id) & F.col("metric").isin(*keep))
        .where((F.size(F.split("model", ":")) == 2) | F.col("model").startswith(f"{FUNNEL}:"))
        .collect()  # surfaces x (2 splits + funnel sources) x 4 rows
    )
    out: dict[str, dict[str, float]] = {}
    for r in sorted(rows, key=lambda r: (r["model"], r["split"], r["metric"])):
        out.setdefault(f"{r['model']}/{r['split']}", {})[r["metric"]] = round(float(r["value"] or 0.0), 4)
    return out
