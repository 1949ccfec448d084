"""Scoring features from end-of-log state equal the feature job's features of appended events.

The definition of a candidate's features is compute_features (serving) over the log with the
candidate events appended at idx = N; snapshot.pair_features must give the same value in every
serving column without re-running it. The tiny dataset of the feature tests carries the edge
cases: a member without events (u99), a user without a members row (u12), a user and a song
seen only after the holdout cutoff (u11, s30), songs without metadata (s25..s29), and a surface
whose context values were never seen (unseen codes).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))
from tiny import N_TEST, N_TRAIN, tiny_frames

from relisten_spark import lake, schemas
from relisten_spark.config import ScoringConfig, SurfaceConfig, load_config
from relisten_spark.errors import InputError
from relisten_spark.features import build, manifest
from relisten_spark.features.bronze import BronzeFrames, read_bronze
from relisten_spark.features.build import compute_features
from relisten_spark.features.catalogue import catalogue
from relisten_spark.scoring import score, snapshot

pytestmark = pytest.mark.spark

SURFACES = {
    "story": SurfaceConfig(source_system_tab="discover", source_screen_name="Explore",
                           source_type="online-playlist"),
    "shopping": SurfaceConfig(source_system_tab="search", source_screen_name="Search", source_type="song"),
    "kiosk": SurfaceConfig(source_system_tab="kiosk", source_screen_name="Kiosk", source_type="kiosk"),
}  # fmt: skip
PAIRS = [
    ("u01", "s01"),  # the most active user, a popular song
    ("u01", "s13"),
    ("u02", "s03"),
    ("u05", "s26"),  # a song without songs.csv metadata (ISRC only)
    ("u12", "s08"),  # a user without a members row; a song without an artist
    ("u11", "s30"),  # user and song seen only after the holdout cutoff
    ("u99", "s01"),  # a member without events: a first event
    ("u99", "s28"),  # ... and a song played once, without metadata
]


def _config(root: Path):
    cfg = load_config(
        None,
        [
            "spark.master=local[2]",
            "features.svd_power_iters=1",
            "features.svd_oversample=2",
            "features.profile=serving",
            f"lake.root={root}",
        ],
    )
    return cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"surfaces": SURFACES})})


@pytest.fixture(scope="module")
def lake_with_features(spark, tmp_path_factory: pytest.TempPathFactory):
    """A tiny lake with bronze tables and the serving features (the job's own run)."""
    cfg = _config(tmp_path_factory.mktemp("snapshot_lake"))
    frames = tiny_frames(spark)
    for name in ("events", "members", "songs", "song_extra"):
        lake.write(spark, getattr(frames, name), lake.table_path(cfg.lake.root, "bronze", name))
    build.run(spark, cfg)
    return cfg, read_bronze(spark, cfg)


def _pairs(spark):
    """Candidate pairs as score.build_pairs makes them (its pool columns included)."""
    rows = [(surface, m, s, f"artist-of-{s}", "nearest", 1) for surface in SURFACES for m, s in PAIRS]
    schema = "surface string, msno string, song_id string, artist_key string, source string, cand_rank int"
    return spark.createDataFrame(rows, schema)


def context_events(pairs: DataFrame, surfaces: Mapping[str, SurfaceConfig], idx: int) -> DataFrame:
    """Hypothetical events "now" for scoring, with each surface's context (the reference's
    candidate events, appended to the log).

    ``pairs``: ``[surface, msno, song_id]``. Returns rows of the bronze.events schema plus
    ``surface``: ``idx`` the given value for every row (one point in time, after the log),
    ``split = 'score'``, ``target`` null, and the source tab / screen / type of the surface.
    """

    def pick(attr: str) -> F.Column:
        expr = F.lit(None).cast("string")
        for name, surface in surfaces.items():
            expr = F.when(F.col("surface") == name, F.lit(getattr(surface, attr))).otherwise(expr)
        return expr.alias(attr)

    columns = {
        "idx": F.lit(idx).cast("long").alias("idx"),
        "msno": F.col("msno"),
        "song_id": F.col("song_id"),
        "source_system_tab": pick("source_system_tab"),
        "source_screen_name": pick("source_screen_name"),
        "source_type": pick("source_type"),
        "target": F.lit(None).cast("int").alias("target"),
        "split": F.lit("score").alias("split"),
    }
    return pairs.select(*(columns[f.name] for f in schemas.EVENTS.fields), "surface")


def test_context_events_carry_each_surface_context(spark) -> None:
    pairs = spark.createDataFrame(
        [("story", "u1", "a"), ("shopping", "u1", "a")], "surface string, msno string, song_id string"
    )
    cfg = ScoringConfig()
    got = context_events(pairs, cfg.surfaces, 42)
    story, shop = cfg.surfaces["story"], cfg.surfaces["shopping"]
    want = spark.createDataFrame(
        [
            (
                42,
                "u1",
                "a",
                story.source_system_tab,
                story.source_screen_name,
                story.source_type,
                None,
                "score",
                "story",
            ),
            (
                42,
                "u1",
                "a",
                shop.source_system_tab,
                shop.source_screen_name,
                shop.source_type,
                None,
                "score",
                "shopping",
            ),
        ],
        T.StructType([*schemas.EVENTS.fields, T.StructField("surface", T.StringType())]),
    )
    assertDataFrameEqual(got, want)


def _reference(spark, cfg, frames: BronzeFrames, pairs, codes) -> pd.DataFrame:
    """compute_features (serving) with one appended event per (pair, surface context) at N."""
    n = N_TRAIN + N_TEST
    contexts = pairs.join(codes, "surface").selectExpr("context as surface", "msno", "song_id").distinct()
    appended = context_events(contexts, cfg.scoring.surfaces, n).drop("surface")
    events = frames.events.select(*schemas.EVENTS.fieldNames()).unionByName(appended)
    result = compute_features(
        spark, BronzeFrames(events, frames.members, frames.songs, frames.song_extra), "serving", cfg
    )
    try:
        rows = result.features.where("split = 'score'").toPandas()
    finally:
        result.release()
    with_surface = rows.merge(codes.toPandas(), on=list(score.CODE_COLUMNS))
    return with_surface.set_index(["surface", "msno", "song_id"]).sort_index()


def _differing(got: pd.DataFrame, want: pd.DataFrame, columns: list[str]) -> dict[str, tuple]:
    """Columns whose values differ (nulls equal; floats within 1e-6 relative): first mismatch."""
    bad = {}
    for c in columns:
        a = pd.to_numeric(got[c], errors="coerce").astype(float).to_numpy()
        b = pd.to_numeric(want[c], errors="coerce").astype(float).to_numpy()
        same = (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= 1e-6 * np.maximum(1.0, np.abs(b)))
        if not same.all():
            i = int(np.argmin(same))
            bad[c] = (got.index[i], a[i], b[i])
    return bad


@pytest.mark.slow
def test_pair_features_equal_compute_features_of_appended_events(spark, lake_with_features) -> None:
    cfg, frames = lake_with_features
    pairs = _pairs(spark)
    codes = score.surface_codes(spark, cfg)
    got = snapshot.pair_features(spark, cfg, frames, pairs, codes).toPandas()
    got = got.set_index(["surface", "msno", "song_id"]).sort_index()
    want = _reference(spark, cfg, frames, pairs, codes)

    assert list(got.index) == list(want.index)
    assert len(got) == len(SURFACES) * len(PAIRS)
    serving = [s.name for s in manifest.profile_specs("serving")]
    assert _differing(got, want, serving) == {}
    others = [s.name for s in catalogue() if s.name not in set(serving)]
    assert got[others].isna().all().all()  # FUTURE columns are typed nulls
    # the cases the tiny data was built for are really there
    first = got.xs("u99", level="msno")
    assert (first["msno_rec_cnt"] == 0.0).all()
    assert first["msno_timestamp_mean"].isna().all()
    assert (first["before_type_same"] == 1.0).all()
    seen = got.xs("u01", level="msno")
    assert (seen["msno_rec_cnt"] > 0).all()
    assert seen["before_timestamp"].notna().all()
    kiosk = got.xs("kiosk", level="surface")
    assert (kiosk["source_system_tab"] != got.xs("story", level="surface")["source_system_tab"]).all()


@pytest.mark.slow
def test_pair_rows_arrive_clustered_by_user(spark, lake_with_features) -> None:
    """What score_and_rank needs: each partition's rows sorted by msno, no user in two."""
    cfg, frames = lake_with_features
    codes = score.surface_codes(spark, cfg)

    def summary(batches):
        yield pd.DataFrame({"users": [[m for batch in batches for m in batch["msno"]]]})

    key = "spark.sql.adaptive.coalescePartitions.enabled"  # keep the tiny data in several tasks
    spark.conf.set(key, "false")
    try:
        features = snapshot.pair_features(spark, cfg, frames, _pairs(spark), codes)
        parts = features.mapInPandas(summary, "users array<string>").collect()
    finally:
        spark.conf.unset(key)
    lists = [p["users"] for p in parts if p["users"]]
    assert len(lists) > 1  # several partitions, or the test proves nothing
    assert all(u == sorted(u) for u in lists)
    assert sum(len(set(u)) for u in lists) == len({m for u in lists for m in u})


@pytest.mark.slow
def test_state_lookups_run_in_generated_code(spark, lake_with_features) -> None:
    """The user and song states (hundreds of columns) join as packed arrays: a join whose output
    had them flat would exceed spark.sql.codegen.maxFields and run outside generated code."""
    cfg, frames = lake_with_features
    codes = score.surface_codes(spark, cfg)
    features = snapshot.pair_features(spark, cfg, frames, _pairs(spark), codes)
    features.collect()  # the adaptive plan is final once it ran
    final = features._jdf.queryExecution().executedPlan().toString().split("== Initial Plan ==")[0]
    joins = [line for line in final.splitlines() if "BroadcastHashJoin" in line]
    depth = {line: len(line) - len(line.lstrip(" :+-")) for line in joins}
    state_joins = sorted(joins, key=depth.__getitem__)[:2]  # the last two joins: the pair rows' lookups
    assert len(state_joins) == 2, final
    assert all(j.lstrip(" :+-").startswith("*(") for j in state_joins), final  # '*(n)': in a codegen stage


def test_songs_outside_the_log_are_refused(spark, lake_with_features) -> None:
    cfg, frames = lake_with_features
    pairs = spark.createDataFrame(
        [("story", "u01", "s27", "x")], "surface string, msno string, song_id string, artist_key string"
    )
    codes = score.surface_codes(spark, cfg)
    with pytest.raises(InputError, match="s27"):
        snapshot.pair_features(spark, cfg, frames, pairs, codes)


def test_stale_features_are_refused(spark, lake_with_features) -> None:
    cfg, frames = lake_with_features
    extra = spark.createDataFrame(
        [(N_TRAIN + N_TEST, "u01", "s01", None, None, None, None, "test")], schemas.EVENTS
    )
    grown = BronzeFrames(frames.events.unionByName(extra), frames.members, frames.songs, frames.song_extra)
    codes = score.surface_codes(spark, cfg)
    with pytest.raises(InputError, match="stale"):
        snapshot.pair_features(spark, cfg, grown, _pairs(spark), codes)
