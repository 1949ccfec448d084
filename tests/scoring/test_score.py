"""relisten score: candidate pairs per surface, surface contexts, Delta output, coverage."""

from __future__ import annotations

import itertools
from datetime import date

import numpy as np
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from stand_in_models import register_stack
from svd_tables import write_svd_tables

from relisten_spark import lake, schemas
from relisten_spark.config import SurfaceConfig, load_config
from relisten_spark.errors import ConfigError
from relisten_spark.features import encode, label_codes, labels
from relisten_spark.features.bronze import BronzeFrames
from relisten_spark.runtime import Held
from relisten_spark.scoring import enriched, score, surfaces

pytestmark = pytest.mark.spark

DIM = 3
SONGS = {  # song_id: (length ms, artist)
    "s1": (200_000, "A"),
    "s2": (200_000, "A"),
    "s3": (200_000, "A"),
    "s4": (400_000, "B"),
    "s5": (250_000, "C"),
    "s6": (180_000, "D"),
    "s7": (210_000, "E"),
}
LOG = [
    ("u1", "s1"),
    ("u1", "s4"),
    ("u2", "s2"),
    ("u2", "s3"),
    ("u2", "s1"),
    ("u3", "s5"),
    ("u1", "s6"),
    ("u3", "s7"),
]


def _cfg(tmp_lake, **scoring):
    surfaces = {
        "story": SurfaceConfig(max_song_length_ms=300_000, exclude_heard=True, max_per_artist=1,
                               source_system_tab="discover", source_screen_name="Discover Feature",
                               source_type="online-playlist"),
        "shopping": SurfaceConfig(exclude_heard=False, source_system_tab="search",
                                  source_screen_name="Search", source_type="song"),
    }  # fmt: skip
    values = {"candidates": 3, "candidate_margin": 2, "top_n": 2, "surfaces": surfaces, **scoring}
    return tmp_lake.model_copy(update={"scoring": tmp_lake.scoring.model_copy(update=values)})


def _bronze(spark, cfg) -> BronzeFrames:
    rows = [
        (i, m, s, "discover" if i % 2 else "search", "Search", "song", i % 2, "train")
        for i, (m, s) in enumerate(LOG)
    ]
    events = spark.createDataFrame(rows, schemas.EVENTS)
    members = spark.createDataFrame(
        [(u, 1, 20, "male", 7, 20150101, 20180101) for u in ("u1", "u2", "u3", "cold")], schemas.MEMBERS
    )
    songs = spark.createDataFrame(
        [(s, length, "465", artist, None, None, 3) for s, (length, artist) in SONGS.items()], schemas.SONGS
    )
    extra = spark.createDataFrame([], schemas.SONG_EXTRA)
    return BronzeFrames(events, members, songs, extra)


def _write_svd(spark, cfg) -> None:
    rng = np.random.default_rng(1)
    members = {u: rng.normal(size=DIM).tolist() for u in ("u1", "u2", "u3")}
    songs = {s: rng.normal(size=DIM).tolist() for s in SONGS}
    write_svd_tables(spark, cfg.lake.root, members, songs, [float(3 - j) for j in range(DIM)])


def test_surface_codes_follow_the_feature_encoders(spark, tmp_lake) -> None:
    same = SurfaceConfig(source_system_tab="search", source_screen_name="Search", source_type="song")
    unseen = SurfaceConfig(source_system_tab="nowhere", source_screen_name="Search", source_type="song")
    cfg = _cfg(tmp_lake, surfaces={"a": same, "b": same.model_copy(), "c": unseen})
    frames = _bronze(spark, cfg)
    fitted = encode.fit_event_codes(frames.events, encode.fit_rows("serving", 6))
    saved = label_codes.codes_frame(spark, fitted.sources, "serving")  # as the feature job saves them
    lake.write(
        spark, saved, lake.table_path(cfg.lake.root, "silver", label_codes.TABLE), partition_by=["profile"]
    )
    got = score.surface_codes(spark, cfg)

    tab = {r["value"]: r["code"] for r in fitted.sources["source_system_tab"].mapping.collect()}
    unseen_code = fitted.sources["source_system_tab"].unseen
    want = spark.createDataFrame(
        [("a", "a", tab["search"], 1, 1), ("b", "a", tab["search"], 1, 1), ("c", "c", unseen_code, 1, 1)],
        "surface string, context string, source_system_tab int, source_screen_name int, source_type int",
    )
    assertDataFrameEqual(got, want)


def _ranked(spark, rows):
    return spark.createDataFrame(rows, score.rank.RANKED_SCHEMA)


def test_write_recs_replaces_one_date_and_keeps_the_others(spark, tmp_lake) -> None:
    cfg = _cfg(tmp_lake)
    first = _ranked(
        spark, [("story", "u1", 1, "s1", 0.9, [("f", "f", 0.1)]), ("shopping", "u1", 1, "s2", 0.8, [])]
    )
    score.write_recs(spark, cfg, first, "2026-11-01", "v1")
    score.write_recs(spark, cfg, first, "2026-11-02", "v1")
    again = _ranked(
        spark, [("story", "u9", 1, "s7", 0.5, [("g", "g", 0.2)]), ("story", "u9", 2, "s6", 0.4, [])]
    )
    versions = score.write_recs(spark, cfg, again, "2026-11-01", "v2")

    story_path = score.recs_path(cfg, "story")
    assert versions == {"gold.recs_story": 2, "gold.recs_shopping": 2}
    table = DeltaTable(story_path)
    assert table.metadata().partition_columns == ["run_date"]
    got = table.to_pandas().sort_values(["run_date", "rank"])
    got["run_date"] = got["run_date"].astype(str)  # a date column
    assert got[["run_date", "msno", "rank", "song_id", "model_version"]].values.tolist() == [
        ["2026-11-01", "u9", 1, "s7", "v2"],
        ["2026-11-01", "u9", 2, "s6", "v2"],
        ["2026-11-02", "u1", 1, "s1", "v1"],
    ]
    assert lake.read(spark, story_path).schema == schemas.RECS
    shopping = DeltaTable(score.recs_path(cfg, "shopping")).to_pandas()
    assert sorted(shopping["run_date"].astype(str)) == ["2026-11-02"]  # 11-01's rerun had no shopping rows


def test_coverage_counts_short_users_by_reason(spark, tmp_lake) -> None:
    cfg = _cfg(tmp_lake, top_n=2)
    frames = _bronze(spark, cfg)
    users = spark.createDataFrame([("u1",), ("u2",), ("u3",), ("cold",)], "msno string")
    pairs = spark.createDataFrame(
        [("story", "u1", "s5", "C", "nearest", 1), ("story", "u1", "s7", "E", "nearest", 2),
         ("story", "u3", "s1", "A", "nearest", 1), ("story", "u3", "s2", "A", "nearest", 2),
         ("story", "cold", "s1", "A", "popular", 1)],
        "surface string, msno string, song_id string, artist_key string, source string, cand_rank int",
    )  # fmt: skip
    ranked = _ranked(
        spark,
        [
            ("story", "u1", 1, "s5", 0.9, []),
            ("story", "u1", 2, "s7", 0.8, []),
            ("story", "u3", 1, "s1", 0.7, []),
        ],
    )
    only_story = {"surfaces": {"story": cfg.scoring.surfaces["story"]}}
    cfg = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update=only_story)})
    cands = score.CandidateSet(
        users, pairs, surfaces.song_catalog(frames.events, frames.songs), surfaces.heard_pairs(frames.events)
    )
    got = score.coverage(cfg, cands, ranked)
    # u2 heard s1, s2, s3 and only s5, s6, s7 remain in the story catalog: 3 >= 2, yet no candidates
    assert got == {
        "story": {
            "users": 4,
            "with_n": 1,
            "short_catalog_smaller_than_n": 0,
            "short_candidate_pool_short": 2,
            "short_artist_cap": 1,
        }
    }


def test_run_date_comes_from_the_config_as_a_date(tmp_lake) -> None:
    cfg = load_config(None, [f"lake.root={tmp_lake.lake.root}", "scoring.run_date=2026-11-23"])
    assert score.resolve_run_date(cfg) == "2026-11-23"
    with pytest.raises(ConfigError, match=r"scoring\.run_date"):
        load_config(None, ["scoring.run_date=23.11.2026"])


def test_recs_frame_has_the_recs_schema(spark) -> None:
    ranked = _ranked(spark, [("story", "u1", 1, "s1", 0.9, [("a", "a", 1.0)])])
    got = score.recs_frame(ranked, "story", "2026-11-23", "v7")
    assert [(f.name, f.dataType) for f in got.schema] == [(f.name, f.dataType) for f in schemas.RECS]
    assert got.where(F.col("model_version") == "v7").count() == 1


# ---- the acceptance invariants on the Delta tables -----------------------------------------
def check_recs(cfg, run_date: str, users: set[str], coverage: dict[str, dict[str, int]]) -> None:
    """N rows per user (or counted short), ranks 1..N, non-increasing scores with the song_id
    tie-break, no heard song where excluded, the artist cap, reasons present."""
    heard = set(LOG)
    artist = {s: a for s, (_, a) in SONGS.items()}
    for name, surface in cfg.scoring.surfaces.items():
        n = surface.top_n or cfg.scoring.top_n
        recs = DeltaTable(score.recs_path(cfg, name)).to_pandas(partitions=[("run_date", "=", run_date)])
        short = 0
        for user in users:
            rows = recs[recs["msno"] == user].sort_values("rank")
            short += len(rows) < n
            assert len(rows) <= n
            assert rows["rank"].tolist() == list(range(1, len(rows) + 1))
            pairs = list(zip(rows["score"], rows["song_id"], strict=True))
            assert all(a[0] > b[0] or (a[0] == b[0] and a[1] < b[1]) for a, b in itertools.pairwise(pairs))
            if surface.exclude_heard:
                assert not {(user, s) for s in rows["song_id"]} & heard
            if surface.max_per_artist:
                assert rows["song_id"].map(artist).value_counts().max() <= surface.max_per_artist
            assert all(len(r) == 3 for r in rows["reasons"])
        assert set(recs["msno"]) <= users
        assert short == sum(v for k, v in coverage[name].items() if k.startswith("short_"))
        assert coverage[name]["with_n"] == len(users) - short


def check_enriched(cfg, run_date: str, readable: bool = False) -> None:
    """gold.recs_<surface>_enriched: the recs' rows with the song's artist and the reasons'
    texts; ``readable``: catalogue features, so every reason is a labelled family."""
    for name in cfg.scoring.surfaces:
        part = [("run_date", "=", run_date)]
        recs = DeltaTable(score.recs_path(cfg, name)).to_pandas(partitions=part)
        rows = DeltaTable(enriched.enriched_path(cfg, name)).to_pandas(partitions=part)
        assert sorted(zip(rows["msno"], rows["rank"], rows["song_id"], strict=True)) == sorted(
            zip(recs["msno"], recs["rank"], recs["song_id"], strict=True)
        )
        artist = {s: a for s, (_, a) in SONGS.items()}
        assert rows["artist_name"].tolist() == rows["song_id"].map(artist).tolist()
        assert all(w.startswith(r[0]["text"]) for w, r in zip(rows["why"], rows["reasons"], strict=True))
        if readable:
            assert {r["code"] for rs in rows["reasons"] for r in rs} <= set(labels.REASONS)


def _train_lgb(features: list[str], seed: int = 0):
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, len(features)))
    y = (x[:, 0] + rng.normal(scale=0.7, size=300) > 0).astype(int)
    params = {"objective": "binary", "num_leaves": 5, "min_data_in_leaf": 5, "verbose": -1}
    return lgb.train(params, lgb.Dataset(x, y, feature_name=features), num_boost_round=8)


def _register(cfg, features: list[str]) -> str:
    return register_stack(cfg.models.root, _train_lgb(features), features)


@pytest.mark.slow
def test_ranked_recommendations_meet_the_acceptance_invariants(spark, tmp_lake) -> None:
    """Candidates -> (stand-in features) -> ensemble -> Delta, and a rerun of the date."""
    cfg = _cfg(tmp_lake, candidates=4)
    _write_svd(spark, cfg)
    frames = _bronze(spark, cfg)
    features = [f"f{j}" for j in range(4)]
    stack_version = _register(cfg, features)
    ens = score.rank.load_ensemble(cfg.models.root, "serving")
    cands = score.build_pairs(spark, cfg, frames, Held())
    got = cands.pairs.toPandas()
    assert sorted(r.msno for r in cands.users.collect()) == ["cold", "u1", "u2", "u3"]
    # K = 4 candidates, fewer only where the user may see fewer songs (u2 heard 3 of 6 story songs)
    sizes = got.groupby(["surface", "msno"]).size().to_dict()
    want = {(surface, u): 4 for surface in ("story", "shopping") for u in ("cold", "u1", "u2", "u3")}
    assert sizes == {**want, ("story", "u2"): 3}
    story = got[got["surface"] == "story"]
    assert not set(zip(story["msno"], story["song_id"], strict=True)) & set(LOG)
    assert "s4" not in set(story["song_id"])  # 400 s is longer than the story bound
    cold = got[got["msno"] == "cold"].sort_values("cand_rank")
    assert set(cold["source"]) == {"popular"}
    assert cold[cold["surface"] == "shopping"]["song_id"].tolist()[0] == "s1"  # the most played song
    # deterministic stand-in features; ties between songs are frequent (4 values per column)
    with_features = cands.pairs.select(
        "*",
        *[
            ((F.abs(F.xxhash64("msno", "song_id", F.lit(j))) % 4) / 4.0).alias(f)
            for j, f in enumerate(features)
        ],
    )
    rules = {
        name: score.rank.SurfaceRule(s.top_n or cfg.scoring.top_n, s.max_per_artist)
        for name, s in cfg.scoring.surfaces.items()
    }
    clustered = score.rank.cluster_by_user(with_features)
    ranked = score.rank.score_and_rank(clustered, ens, rules, batch_size=3).persist()
    with score.rank.arrow_batch_size(spark, 3):
        ranked.count()
    score.write_recs(spark, cfg, ranked, "2026-11-22", stack_version)
    score.write_recs(spark, cfg, ranked, "2026-11-23", stack_version)
    covered = score.coverage(cfg, cands, ranked)
    all_users = {"u1", "u2", "u3", "cold"}
    check_recs(cfg, "2026-11-23", all_users, covered)
    enriched_versions = enriched.write_enriched(spark, cfg, frames, "2026-11-23")
    assert sorted(enriched_versions) == ["gold.recs_shopping_enriched", "gold.recs_story_enriched"]
    check_enriched(cfg, "2026-11-23")

    before = DeltaTable(score.recs_path(cfg, "story")).to_pandas().sort_values(["run_date", "msno", "rank"])
    versions = score.write_recs(spark, cfg, ranked, "2026-11-23", stack_version)  # rerun of the date
    after = DeltaTable(score.recs_path(cfg, "story")).to_pandas().sort_values(["run_date", "msno", "rank"])
    assert versions["gold.recs_story"] == 2
    # same rows: the partition was replaced, not appended to; the other date kept
    assert before.reset_index(drop=True).equals(after.reset_index(drop=True))
    assert sorted(str(d) for d in after["run_date"].unique()) == ["2026-11-22", "2026-11-23"]


@pytest.mark.slow
def test_score_command_end_to_end(spark, tmp_lake) -> None:
    """`relisten features` (serving) then `relisten score` on a tiny lake; gold.runs row."""
    from relisten_spark.cli import run_command
    from relisten_spark.features import manifest
    from relisten_spark.features.catalogue import gbdt_columns

    cfg = _cfg(tmp_lake, candidates=4, run_date=date(2026, 11, 23))
    cfg = cfg.model_copy(update={"features": cfg.features.model_copy(update={"profile": "serving"})})
    frames = _bronze(spark, cfg)
    for name in ("events", "members", "songs", "song_extra"):
        lake.write(spark, getattr(frames, name), lake.table_path(cfg.lake.root, "bronze", name))
    ((_, built, _),) = run_command("features", cfg)
    assert built["rows"] == len(LOG)
    serving = {s.name for s in manifest.profile_specs("serving")}
    version = _register(cfg, [c for c in gbdt_columns() if c in serving])

    ((_, summary, _),) = run_command("score", cfg)

    assert summary["model_version"] == version
    check_recs(cfg, "2026-11-23", {"u1", "u2", "u3", "cold"}, summary["coverage"])
    check_enriched(cfg, "2026-11-23", readable=True)
    all_runs = lake.read(spark, lake.table_path(cfg.lake.root, "gold", "runs")).collect()
    statuses = sorted((r.command, r.status) for r in all_runs)
    assert statuses == [("features", "succeeded"), ("score", "succeeded")]
    runs = [r for r in all_runs if r.command == "score"]
    assert runs[0].model_versions["stack"] == version
    assert runs[0].input_versions["bronze.events"] == 0
    assert runs[0].input_versions["silver.features"] == 0
    assert runs[0].row_counts["rows.candidate_pairs"] == summary["rows"]["candidate_pairs"]
    assert runs[0].timings_s["seconds.candidates"] > 0
