"""``relisten score``: every user's top-N songs per surface into ``gold.recs_<surface>``.

Stages (each logged with its time):

1. candidates — every user of bronze.members or the events gets ``scoring.candidates`` (K)
   candidates per surface: nearest songs in the SVD factor space of ``scoring.profile``
   (:mod:`~relisten_spark.scoring.candidates`, ``K + scoring.candidate_margin`` of them before
   the surface filters), then popular songs for users with fewer (no history, no factors, or a
   list emptied by the filters) (:mod:`~relisten_spark.scoring.surfaces`);
2. features — each (user, candidate, surface context) gets the serving features of a
   hypothetical event "now" (``idx = max(idx) + 1``), built from end-of-log state tables of the
   log's serving feature rows (:mod:`~relisten_spark.scoring.snapshot`; equal to the feature
   job's :func:`~relisten_spark.features.build.compute_features` with the candidates appended,
   without re-running it over the log, and with the feature job's saved encoders);
3. scoring — the stack over LightGBM and the nets, top-N per user and surface with the artist
   cap, and reasons (:mod:`~relisten_spark.scoring.rank`);
4. output — a coverage check first (every user gets exactly N rows per surface, or the summary
   counts those who do not and why; more than N stops the run before anything is written),
   then ``gold.recs_<surface>`` (schemas.RECS) partitioned by ``run_date``; a rerun of a date
   replaces that partition in one Delta commit; then ``gold.recs_<surface>_enriched`` from it
   (song name, artist, genres, readable reasons: :mod:`~relisten_spark.scoring.enriched`).

The returned summary carries the run id, model and input versions, row counts and timings:
the CLI writes it to ``gold.runs``.

Surface contexts: the codes of each surface's context (``source_system_tab``,
``source_screen_name``, ``source_type``) come from the encoders the feature job fitted and saved
(silver.label_codes, :func:`surface_codes`); surfaces whose contexts encode alike share one
context.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake, schemas, tracking
from relisten_spark.commits import StageRun
from relisten_spark.config import Config
from relisten_spark.features import encode, label_codes
from relisten_spark.features.bronze import BRONZE_TABLES, BronzeFrames, read_bronze
from relisten_spark.features.embeddings import SVD_TABLES, read_svd_table
from relisten_spark.retrieval import candidates as stored_candidates
from relisten_spark.retrieval.baselines import singular_values
from relisten_spark.retrieval.candidates import resolve_run_date
from relisten_spark.runs import new_run_id
from relisten_spark.runtime import Held, PhaseTimer, checkpoint
from relisten_spark.scoring import candidates, enriched, rank, snapshot, surfaces
from relisten_spark.scoring.levers import Levers

log = logging.getLogger(__name__)

CODE_COLUMNS = encode.SOURCE_COLUMNS
SILVER_TABLES = ("features", *SVD_TABLES, label_codes.TABLE)
SHORT_REASONS = ("catalog_smaller_than_n", "candidate_pool_short", "artist_cap")


def recs_path(cfg: Config, surface: str) -> str:
    return lake.table_path(cfg.lake.root, "gold", f"recs_{surface}")


# ---- candidates ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CandidateSet:
    """``users`` ``[msno]``; ``pairs`` ``[surface, msno, song_id, artist_key, source, cand_rank]``;
    ``catalog`` (surfaces.song_catalog) and ``heard`` (surfaces.heard_pairs) they were built from."""

    users: DataFrame
    pairs: DataFrame
    catalog: DataFrame
    heard: DataFrame


def build_pairs(
    spark: SparkSession,
    cfg: Config,
    frames: BronzeFrames,
    held: Held,
    users: DataFrame | None = None,
    stored: DataFrame | None = None,
) -> CandidateSet:
    """Every user's K candidates per surface (persisted through ``held``); ``users`` ``[msno]``
    only those users (default: every user of the members and the events); ``stored`` the
    silver.candidates rows to draw from (default: the SVD nearest songs). Persisting also cuts
    the query plans: the candidate pools reuse the nearest songs, the catalog and the heard pairs
    several times, and without cached leaves Spark would both recompute them and optimise one
    very large plan."""
    scoring, profile = cfg.scoring, cfg.scoring.profile
    events = frames.events
    only = users is not None
    users = held.persist(surfaces.all_users(events, frames.members) if users is None else users)
    if stored is not None:
        nearest = stored.select("msno", "song_id", F.col("rank").alias("factor_rank"))
        if only:
            nearest = nearest.join(users, "msno", "left_semi")
    else:
        member_f = read_svd_table(spark, cfg.lake.root, "svd_member", profile)
        if only:  # only their nearest songs
            member_f = member_f.join(users, "msno", "left_semi")
        song_f = read_svd_table(spark, cfg.lake.root, "svd_song", profile)
        values = singular_values(read_svd_table(spark, cfg.lake.root, "svd_values", profile), profile)
        pool = scoring.candidates + scoring.candidate_margin
        nearest = candidates.nearest_songs(
            member_f, song_f, values, pool, scoring.block_size, scoring.song_shard_size
        )
    nearest = held.persist(nearest)
    nearest.count()  # materialised once: every surface's pool reads it
    catalog = held.persist(surfaces.song_catalog(events, frames.songs))
    heard = held.persist(surfaces.heard_pairs(events))
    plays = held.persist(candidates.song_plays(events))
    pools = []
    for name, surface in scoring.surfaces.items():
        shown = surfaces.surface_catalog(catalog, surface)
        one = surfaces.candidate_pool(users, nearest, plays, heard, shown, surface, scoring.candidates)
        pools.append(one.withColumn("surface", F.lit(name)))
    pairs = pools[0]
    for other in pools[1:]:
        pairs = pairs.unionByName(other)
    pairs = held.persist(pairs.select("surface", *surfaces.POOL_COLUMNS))
    return CandidateSet(users, pairs, catalog, heard)


def sources_fed(pairs: DataFrame, stored: DataFrame | None) -> dict[str, int]:
    """Candidate pairs (all surfaces) per source: silver.candidates' sources (``stored``), or
    ``svd`` without it, and ``popular_fill`` for the surfaces' popular fill."""
    nearest, fill = F.col("source") == "nearest", F.lit("popular_fill")
    if stored is None:
        labelled = pairs.select(F.when(nearest, F.lit("svd")).otherwise(fill).alias("s"))
    else:
        origin = stored.select("msno", "song_id", F.col("source").alias("_stored"))
        joined = pairs.join(origin, ["msno", "song_id"], "left")
        labelled = joined.select(F.when(nearest, F.col("_stored")).otherwise(fill).alias("s"))
    return {r["s"]: int(r["count"]) for r in labelled.groupBy("s").count().collect()}  # <= 5 sources


# ---- features ------------------------------------------------------------------------------
def surface_codes(spark: SparkSession, cfg: Config) -> DataFrame:
    """``[surface, context, <source code columns>]``: each surface's context as the feature job
    encodes it (its encoders of ``scoring.profile``, silver.label_codes), and ``context`` the
    surface whose raw values stand for that code triple."""
    codes = label_codes.event_codes(label_codes.read_codes(spark, cfg.lake.root, cfg.scoring.profile))
    rows = [
        (name, s.source_system_tab, s.source_screen_name, s.source_type)
        for name, s in sorted(cfg.scoring.surfaces.items())
    ]
    df = spark.createDataFrame(rows, "surface string, " + ", ".join(f"{c} string" for c in CODE_COLUMNS))
    for column in CODE_COLUMNS:
        df = encode.apply_codes(df, codes.sources[column], column, f"_code_{column}")
    coded = df.select("surface", *[F.col(f"_code_{c}").alias(c) for c in CODE_COLUMNS]).collect()
    first: dict[tuple[int, ...], str] = {}
    mapped = []
    for row in coded:  # one row per configured surface
        triple = tuple(int(row[c]) for c in CODE_COLUMNS)
        first.setdefault(triple, row["surface"])
        mapped.append((row["surface"], first[triple], *triple))
    schema = "surface string, context string, " + ", ".join(f"{c} int" for c in CODE_COLUMNS)
    return spark.createDataFrame(mapped, schema)


def surface_rules(cfg: Config) -> dict[str, rank.SurfaceRule]:
    """Each surface's ranking rule: N, the artist cap and its levers (scoring.surfaces.*)."""
    return {
        name: rank.SurfaceRule(
            surfaces.surface_top_n(cfg.scoring, name),
            s.max_per_artist,
            Levers(s.popularity_penalty, s.mmr_weight, s.mmr_similarity, cfg.features.svd_song_k),
        )
        for name, s in cfg.scoring.surfaces.items()
    }


# ---- output --------------------------------------------------------------------------------
def recs_frame(ranked: DataFrame, surface: str, run_date: str, model_version: str) -> DataFrame:
    """The schemas.RECS rows of one surface from :func:`rank.score_and_rank`'s output."""
    return ranked.where(F.col("surface") == surface).select(
        F.lit(run_date).cast("date").alias("run_date"),
        F.col("msno").cast("string"),
        F.col("rank").cast("int"),
        F.col("song_id").cast("string"),
        F.col("score").cast("double"),
        F.lit(model_version).alias("model_version"),
        F.col("reasons").cast(schemas.RECS["reasons"].dataType),
    )


def recs_stage(spark: SparkSession, cfg: Config, run_id: str, run_date: str) -> StageRun:
    """The score run's writes: the ``run_date`` partition of every surface's table, committed
    together; a score run for the same date that commits first after this call wins, this one
    then fails with a write conflict (:mod:`relisten_spark.commits`)."""
    tables = [f"recs_{name}" for name in cfg.scoring.surfaces]
    return StageRun(spark, cfg, "gold", "score", tables, scope=f"run_date={run_date}", run_id=run_id)


def write_recs(
    spark: SparkSession,
    cfg: Config,
    ranked: DataFrame,
    run_date: str,
    model_version: str,
    out: StageRun | None = None,
) -> dict[str, int]:
    """Replace the ``run_date`` partition of every surface's table (through ``out``, default a
    new :func:`recs_stage`); return {table: version}."""
    out = out or recs_stage(spark, cfg, new_run_id("score"), run_date)
    with out:
        for name in cfg.scoring.surfaces:
            df = recs_frame(ranked, name, run_date, model_version)
            out.prepare(f"recs_{name}", df, partition_by=["run_date"], replace_where={"run_date": run_date})
        versions = out.commit()
    return {f"gold.{table}": v for table, v in versions.items()}


def coverage(cfg: Config, cands: CandidateSet, ranked: DataFrame) -> dict[str, dict[str, int]]:
    """Per surface: users, users with exactly N rows, and the users short of N by reason.

    Reasons: ``catalog_smaller_than_n`` (the surface's catalog, less the user's heard songs when
    excluded, has fewer than N songs), ``artist_cap`` (N or more candidates, fewer than N after
    the cap per artist) and ``candidate_pool_short`` (fewer than N candidates although the
    catalog had enough; the popular fill of :func:`surfaces.candidate_pool` rules this out, so a
    non-zero count flags a defect).
    """
    out: dict[str, dict[str, int]] = {}
    for name, surface in cfg.scoring.surfaces.items():
        n = surfaces.surface_top_n(cfg.scoring, name)
        got = ranked.where(F.col("surface") == name).groupBy("msno").agg(F.count("*").alias("_recs"))
        pool = cands.pairs.where(F.col("surface") == name).groupBy("msno").agg(F.count("*").alias("_pool"))
        shown = surfaces.surface_catalog(cands.catalog, surface)
        eligible = surfaces.eligible_counts(cands.users, cands.heard, shown, surface)
        per_user = eligible.join(got, "msno", "left").join(pool, "msno", "left").fillna(0, ["_recs", "_pool"])
        short = F.col("_recs") < n
        why = {
            SHORT_REASONS[0]: short & (F.col("eligible") < n),
            SHORT_REASONS[1]: short & (F.col("eligible") >= n) & (F.col("_pool") < n),
            SHORT_REASONS[2]: short & (F.col("eligible") >= n) & (F.col("_pool") >= n),
        }
        totals = per_user.agg(
            F.count("*").alias("users"),
            F.sum((F.col("_recs") == n).cast("long")).alias("with_n"),
            F.sum((F.col("_recs") > n).cast("long")).alias("over"),
            *[F.sum(cond.cast("long")).alias(f"short_{r}") for r, cond in why.items()],
        ).collect()[0]  # one row per surface
        if totals["over"]:
            raise RuntimeError(f"surface {name}: {totals['over']} users got more than {n} rows")
        out[name] = {
            k: int(totals[k] or 0) for k in ("users", "with_n", *[f"short_{r}" for r in SHORT_REASONS])
        }
        short_total = out[name]["users"] - out[name]["with_n"]
        if short_total:
            log.warning(
                "score: surface %s: %d of %d users got fewer than %d rows: %s",
                name,
                short_total,
                out[name]["users"],
                n,
                {k: v for k, v in out[name].items() if k.startswith("short_") and v},
            )
    return out


def _input_versions(cfg: Config) -> dict[str, int]:
    versions = {}
    for layer, names in (("bronze", BRONZE_TABLES), ("silver", SILVER_TABLES)):
        for name in names:
            versions[f"{layer}.{name}"] = lake.committed_version(lake.table_path(cfg.lake.root, layer, name))
    return versions


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """``relisten score``: candidates, features, ensemble, top-N per surface, Delta output."""
    timer = PhaseTimer("score")
    started = time.perf_counter()
    tracker = tracking.open_tracker(cfg)
    run_id = new_run_id("score")
    run_date = resolve_run_date(cfg)
    surfaces.check_surfaces(cfg.scoring)
    ensemble = rank.load_ensemble(
        cfg.models.root, cfg.scoring.profile, cfg.scoring.reasons, cfg.scoring.compiled_gbdt
    )
    out = recs_stage(spark, cfg, run_id, run_date)  # its writes conflict with a later run's
    input_versions = _input_versions(cfg)
    frames = read_bronze(spark, cfg, {n: input_versions[f"bronze.{n}"] for n in BRONZE_TABLES})
    rules = surface_rules(cfg)
    log.info("score: run %s date %s, ensemble %s", run_id, run_date, ensemble.versions)
    held = Held()
    try:
        with timer.phase("candidates"):
            stored = stored_candidates.read_candidates(spark, cfg, run_date)
            cands = build_pairs(spark, cfg, frames, held, stored=stored)
            n_users, n_pairs = cands.users.count(), cands.pairs.count()
            fed = sources_fed(cands.pairs, stored)
        with timer.phase("features_and_scoring"):
            codes = surface_codes(spark, cfg)
            features = snapshot.pair_features(spark, cfg, frames, cands.pairs, codes)
            model_seconds = spark.sparkContext.accumulator(0.0)
            ranked = rank.score_and_rank(features, ensemble, rules, cfg.scoring.batch_size, model_seconds)
            with rank.arrow_batch_size(spark, cfg.scoring.batch_size):
                # materialised once, its lineage cut: the writes and the coverage check reuse it,
                # and their plans stay small (the feature plan behind it is large)
                ranked = checkpoint(ranked)
            n_ranked = ranked.count()
        timer.seconds["model_task_seconds"] = round(float(model_seconds.value), 3)
        with timer.phase("coverage"):  # before the write: a defect stops the run, not the readers
            covered = coverage(cfg, cands, ranked)
        with timer.phase("write"):
            table_versions = write_recs(spark, cfg, ranked, run_date, ensemble.stack_version, out)
            table_versions.update(enriched.write_enriched(spark, cfg, frames, run_date))
    finally:
        held.release()
    timer.seconds["total"] = round(time.perf_counter() - started, 3)
    short = sum(v for c in covered.values() for k, v in c.items() if k.startswith("short_"))
    summary: dict[str, Any] = {
        "run_id": run_id,
        "run_date": run_date,
        "model_version": ensemble.stack_version,
        "model_versions": ensemble.versions,
        "input_versions": input_versions,
        "tables": {
            table: f"{recs_path(cfg, table.removeprefix('gold.recs_'))} (version {v})"
            for table, v in table_versions.items()
        },
        "rows": {"users": n_users, "candidate_pairs": n_pairs, "recommendations": n_ranked},
        "candidate_sources": fed,
        "coverage": covered,
        "users_short_of_n": short,
        "seconds": timer.seconds,
    }
    if tracker.enabled:
        summary["mlflow"] = tracker.log(_stage_log(cfg, summary, tracker))
    return summary


def _stage_log(cfg: Config, summary: dict[str, Any], tracker: tracking.Tracker) -> tracking.StageLog:
    """The MLflow view of a score run: rows, coverage and timings as metrics, the engine versions
    of the models used as params ``model.<name>`` and their registered versions as tags
    ``relisten.registered.<name>``."""
    used = summary["model_versions"]
    registered = tracker.registered_versions(used)
    keys = ("top_n", "candidates", "profile", "reasons", "candidate_margin")
    return tracking.StageLog(
        "score",
        summary["run_id"],
        params={
            **{k: getattr(cfg.scoring, k) for k in keys},
            "run_date": summary["run_date"],
            "surfaces": sorted(cfg.scoring.surfaces),
            "model": used,
        },
        metrics={k: summary[k] for k in ("rows", "coverage", "users_short_of_n")},
        seconds=summary["seconds"],
        input_versions=summary["input_versions"],
        tags={f"relisten.registered.{m}": v for m, v in registered.items()},
        dicts={"tables.json": summary["tables"]},
    )
