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
   replaces that partition in one Delta commit.

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
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.features import encode, label_codes
from relisten_spark.features.bronze import BRONZE_TABLES, BronzeFrames, read_bronze
from relisten_spark.features.embeddings import SVD_TABLES, read_svd_table
from relisten_spark.runs import new_run_id
from relisten_spark.runtime import Held, PhaseTimer
from relisten_spark.scoring import candidates, rank, snapshot, surfaces

log = logging.getLogger(__name__)

CODE_COLUMNS = encode.SOURCE_COLUMNS
SILVER_TABLES = ("features", *SVD_TABLES, label_codes.TABLE)
SHORT_REASONS = ("catalog_smaller_than_n", "candidate_pool_short", "artist_cap")


def recs_path(cfg: Config, surface: str) -> str:
    return lake.table_path(cfg.lake.root, "gold", f"recs_{surface}")


def resolve_run_date(cfg: Config) -> str:
    """``scoring.run_date`` or today's UTC date, as YYYY-MM-DD."""
    return (cfg.scoring.run_date or datetime.now(UTC).date()).isoformat()


# ---- candidates ----------------------------------------------------------------------------
def singular_values(values: DataFrame, profile: str) -> list[float]:
    """The user x song singular values in component order (``svd_values``: k small rows)."""
    rows = (
        values.where(F.col("matrix") == "user_song")
        .select("component", "value")
        .orderBy("component")
        .collect()
    )
    if not rows:
        raise InputError(f"silver/svd_values has no user_song values for profile '{profile}'")
    return [float(r["value"]) for r in rows]


@dataclass(frozen=True)
class CandidateSet:
    """``users`` ``[msno]``; ``pairs`` ``[surface, msno, song_id, artist_key, source, cand_rank]``;
    ``catalog`` (surfaces.song_catalog) and ``heard`` (surfaces.heard_pairs) they were built from."""

    users: DataFrame
    pairs: DataFrame
    catalog: DataFrame
    heard: DataFrame


def build_pairs(spark: SparkSession, cfg: Config, frames: BronzeFrames, held: Held) -> CandidateSet:
    """Every user's K candidates per surface (persisted through ``held``). Persisting also cuts
    the query plans: the candidate pools reuse the nearest songs, the catalog and the heard pairs
    several times, and without cached leaves Spark would both recompute them and optimise one
    very large plan."""
    scoring, profile = cfg.scoring, cfg.scoring.profile
    events = frames.events
    users = held.persist(surfaces.all_users(events, frames.members))
    member_f = read_svd_table(spark, cfg.lake.root, "svd_member", profile)
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


# ---- output --------------------------------------------------------------------------------
def recs_frame(ranked: DataFrame, surface: str, run_date: str, model_version: str) -> DataFrame:
    """The schemas.RECS rows of one surface from :func:`rank.score_and_rank`'s output."""
    return ranked.where(F.col("surface") == surface).select(
        F.lit(run_date).alias("run_date"),
        F.col("msno").cast("string"),
        F.col("rank").cast("int"),
        F.col("song_id").cast("string"),
        F.col("score").cast("double"),
        F.lit(model_version).alias("model_version"),
        F.col("reasons").cast("array<string>"),
    )


def write_recs(
    spark: SparkSession, cfg: Config, ranked: DataFrame, run_date: str, model_version: str
) -> dict[str, int]:
    """Replace the ``run_date`` partition of every surface's table; return {table: version}."""
    versions = {}
    for name in cfg.scoring.surfaces:
        path = recs_path(cfg, name)
        df = recs_frame(ranked, name, run_date, model_version)
        versions[f"gold.recs_{name}"] = lake.write(
            spark, df, path, partition_by=["run_date"], replace_where={"run_date": run_date}
        )
    return versions


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
            versions[f"{layer}.{name}"] = lake.version(lake.table_path(cfg.lake.root, layer, name))
    return versions


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """``relisten score``: candidates, features, ensemble, top-N per surface, Delta output."""
    timer = PhaseTimer("score")
    started = time.perf_counter()
    run_id = new_run_id("score")
    run_date = resolve_run_date(cfg)
    surfaces.check_surfaces(cfg.scoring)
    ensemble = rank.load_ensemble(cfg.models.root, cfg.scoring.profile, cfg.scoring.reasons)
    frames = read_bronze(spark, cfg)
    input_versions = _input_versions(cfg)
    rules = {
        name: rank.SurfaceRule(surfaces.surface_top_n(cfg.scoring, name), s.max_per_artist)
        for name, s in cfg.scoring.surfaces.items()
    }
    log.info("score: run %s date %s, ensemble %s", run_id, run_date, ensemble.versions)
    held = Held()
    try:
        with timer.phase("candidates"):
            cands = build_pairs(spark, cfg, frames, held)
            n_users, n_pairs = cands.users.count(), cands.pairs.count()
        with timer.phase("features_and_scoring"):
            codes = surface_codes(spark, cfg)
            features = snapshot.pair_features(spark, cfg, frames, cands.pairs, codes)
            model_seconds = spark.sparkContext.accumulator(0.0)
            ranked = rank.score_and_rank(features, ensemble, rules, cfg.scoring.batch_size, model_seconds)
            with rank.arrow_batch_size(spark, cfg.scoring.batch_size):
                # materialised once, its lineage cut: the writes and the coverage check reuse it,
                # and their plans stay small (the feature plan behind it is large)
                ranked = ranked.localCheckpoint(eager=True)
            n_ranked = ranked.count()
        timer.seconds["model_task_seconds"] = round(float(model_seconds.value), 3)
        with timer.phase("coverage"):  # before the write: a defect stops the run, not the readers
            covered = coverage(cfg, cands, ranked)
        with timer.phase("write"):
            table_versions = write_recs(spark, cfg, ranked, run_date, ensemble.stack_version)
    finally:
        held.release()
    timer.seconds["total"] = round(time.perf_counter() - started, 3)
    short = sum(v for c in covered.values() for k, v in c.items() if k.startswith("short_"))
    return {
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
        "coverage": covered,
        "users_short_of_n": short,
        "seconds": timer.seconds,
    }
