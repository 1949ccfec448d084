"""relisten backtest: planted lists with exact HitRate / NDCG, the lever settings from one set of
scores, gold.metrics rows kept apart from evaluate's, and point-in-time lists (slow)."""

from __future__ import annotations

import math
import sys
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from stand_in_models import register_stack

from relisten_spark import lake, schemas
from relisten_spark.evaluation import backtest
from relisten_spark.scoring import rank, score
from relisten_spark.scoring.levers import POPULARITY, Levers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))
from tiny import tiny_frames

pytestmark = pytest.mark.spark

N_TRAIN = 20  # holdout 0.2: calib idx 16, 17; eval idx 18, 19
EVENTS = [(i, f"u{i % 3}", f"old{i}", "discover", "Search", "song", 0, "train") for i in range(18)]
EVENTS += [
    (18, "u1", "a", "discover", "Search", "song", 1, "train"),  # u1 plays a again within a month
    (19, "u2", "b", "discover", "Search", "song", 0, "train"),  # u2 plays b once
    (20, "u2", "c", "discover", "Search", "song", None, "test"),
]
# the scored candidates: u1's best is a (certain top-1), u2's b comes second
SCORED = [
    ("story", "u1", "a", "A", 0.9, 0.75),
    ("story", "u1", "c", "C", 0.8, 0.0),
    ("story", "u1", "d", "D", 0.7, 0.0),
    ("story", "u2", "c", "C", 0.9, 0.0),
    ("story", "u2", "b", "B", 0.8, 0.0),
    ("story", "u2", "d", "D", 0.1, 0.0),
]
SETTINGS = {
    backtest.CONFIGURED: {"story": rank.SurfaceRule(2, None)},
    "pop0.2": {"story": rank.SurfaceRule(2, None, Levers(popularity_penalty=0.2))},
}


def _measured(spark, tmp_lake) -> dict[tuple[str, str], float]:
    events = backtest.eval_events(spark.createDataFrame(EVENTS, schemas.EVENTS), tmp_lake)
    schema = (
        f"surface string, msno string, song_id string, artist_key string, score double, {POPULARITY} double"
    )
    lists = backtest.pick_lists(spark.createDataFrame(SCORED, schema), SETTINGS)
    rows = backtest.metric_rows(backtest.accuracy(lists, events, [1, 2]), tmp_lake, "bt-1", "eval")
    return {(r.model, r.metric): r.value for r in rows.collect()}


def test_planted_lists_give_exact_hit_rate_and_ndcg(spark, tmp_lake) -> None:
    got = _measured(spark, tmp_lake)
    # relevant = any eval play: u1 {a} at rank 1, u2 {b} at rank 2
    story = {m: got[("topn:story", m)] for m in ("hr@1", "hr@2", "ndcg@1", "ndcg@2", "recall@2", "mrr")}
    assert story == pytest.approx(
        {
            "hr@1": 0.5,
            "hr@2": 1.0,
            "ndcg@1": 0.5,
            "ndcg@2": (1 + 1 / math.log2(3)) / 2,
            "recall@2": 1.0,
            "mrr": (1 + 1 / 2) / 2,
        }
    )
    # relevant = target 1: only u1's a
    assert got[("topn:story", "target_hr@1")] == pytest.approx(1.0)
    assert got[("topn:story", "target_ndcg@2")] == pytest.approx(1.0)
    # the popularity penalty (0.9 - 0.2 * 0.75 = 0.75 < 0.8) pushes a to rank 2: the same scores,
    # re-ranked
    assert got[("topn:story:pop0.2", "hr@1")] == pytest.approx(0.0)
    assert got[("topn:story:pop0.2", "ndcg@2")] == pytest.approx(1 / math.log2(3))


def test_topn_rows_replace_their_own_and_keep_evaluates(spark, tmp_lake) -> None:
    path = backtest.metrics_path(tmp_lake)
    other = spark.createDataFrame(
        [("ev-1", "lightgbm", "serving", "eval", "roc_auc", 0.8, "time")], schemas.METRICS
    )
    lake.write(spark, other, path)
    rows = backtest.metric_rows(
        spark.createDataFrame(
            [("story", "configured", "hr@1", 0.5)],
            "surface string, setting string, metric string, value double",
        ),
        tmp_lake,
        "bt-1",
        "eval",
    )
    backtest.write_metrics(spark, tmp_lake, rows)
    backtest.write_metrics(spark, tmp_lake, rows.withColumn("run_id", F.lit("bt-2")))
    got = sorted((r.run_id, r.model, r.metric) for r in lake.read(spark, path).collect())
    assert got == [("bt-2", "topn:story", "hr@1"), ("ev-1", "lightgbm", "roc_auc")]
    kept = backtest.topn_rows(spark, tmp_lake)
    assert [r.run_id for r in kept.collect()] == ["bt-2"]


def test_funnel_rows_are_named_by_source_and_replaced_with_the_backtest_rows(spark, tmp_lake) -> None:
    measured = spark.createDataFrame(
        [("story", "stage1", "hr@1", 0.25)], "surface string, setting string, metric string, value double"
    )
    rows = backtest.metric_rows(measured, tmp_lake, "bt-1", "eval", funnel=True)
    assert [(r.model, r.metric, r.value) for r in rows.collect()] == [("funnel:story:stage1", "hr@1", 0.25)]
    backtest.write_metrics(spark, tmp_lake, rows)
    assert [r.model for r in backtest.topn_rows(spark, tmp_lake).collect()] == ["funnel:story:stage1"]
    backtest.write_metrics(spark, tmp_lake, rows.withColumn("model", F.lit("topn:story")))
    got = lake.read(spark, backtest.metrics_path(tmp_lake)).collect()
    assert [r.model for r in got] == ["topn:story"]


def _serving_cfg(tmp_lake):
    scoring = tmp_lake.scoring.model_copy(update={"candidates": 5, "candidate_margin": 5, "top_n": 3})
    features = tmp_lake.features.model_copy(
        update={
            "profile": "serving",
            "svd_power_iters": 1,
            "svd_oversample": 2,
        }
    )
    return tmp_lake.model_copy(update={"scoring": scoring, "features": features})


def _register(models_root: str, features: list[str]) -> None:
    """A stand-in LightGBM over ``features`` (trained on random rows) and a stack of it alone."""
    import lightgbm as lgb
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, len(features)))
    x[:, 0] = rng.uniform(0, 4, size=300)  # the first feature: log1p of the song's plays so far
    y = (x[:, 0] + rng.normal(scale=0.7, size=300) > 2).astype(int)
    params = {"objective": "binary", "num_leaves": 5, "min_data_in_leaf": 5, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(x, y, feature_name=features), num_boost_round=8)
    register_stack(models_root, booster, features)


def _lists(spark, cfg) -> list[tuple]:
    """The backtest's lists of every setting, from the lake of ``cfg``."""
    from relisten_spark.features.bronze import read_bronze
    from relisten_spark.runtime import Held
    from relisten_spark.splits import holdout_cutoff

    frames = read_bronze(spark, cfg)
    cutoff = holdout_cutoff(frames.events, cfg.evaluation)
    users = backtest.eval_events(frames.events, cfg).select("msno").distinct()
    held = Held()
    try:
        scored = backtest.score_as_of(spark, cfg, frames, cutoff, users, held)
        lists = backtest.pick_lists(scored, backtest.setting_rules(cfg)).collect()
    finally:
        held.release()
    return sorted(tuple(r) for r in lists)


@pytest.mark.slow
def test_rows_after_the_cutoff_change_no_backtest_list(spark, tmp_lake) -> None:
    """features (serving) + a stand-in model + backtest; then every row after the cutoff gets
    another song, context and target, the features are rebuilt, and the lists stay the same."""
    from relisten_spark.cli import run_command
    from relisten_spark.features import manifest
    from relisten_spark.features.catalogue import gbdt_columns

    cfg = _serving_cfg(tmp_lake)
    frames = tiny_frames(spark)

    def build(events) -> None:
        for name, frame in (("events", events), ("members", frames.members), ("songs", frames.songs)):
            lake.write(spark, frame, lake.table_path(cfg.lake.root, "bronze", name))
        lake.write(spark, frames.song_extra, lake.table_path(cfg.lake.root, "bronze", "song_extra"))
        run_command("features", cfg)

    build(frames.events)
    serving = {s.name for s in manifest.profile_specs("serving")}
    _register(
        cfg.models.root,
        ["song_rec_cnt", *[c for c in gbdt_columns() if c in serving and c != "song_rec_cnt"]],
    )
    before = _lists(spark, cfg)
    ((_, summary, _),) = run_command("backtest", cfg)
    assert summary["rows"]["list_rows"] == len(before)

    from relisten_spark.splits import holdout_cutoff

    cutoff = holdout_cutoff(frames.events, cfg.evaluation)
    later = F.col("idx") >= cutoff
    changed = frames.events.select(
        "idx",
        "msno",
        F.when(later, F.concat(F.lit("s0"), (F.col("idx") % 9 + 1).cast("string")))
        .otherwise(F.col("song_id"))
        .alias("song_id"),
        F.when(later, F.lit("radio")).otherwise(F.col("source_system_tab")).alias("source_system_tab"),
        "source_screen_name",
        "source_type",
        F.when(later & F.col("target").isNotNull(), 1 - F.col("target"))
        .otherwise(F.col("target"))
        .alias("target"),
        "split",
    )
    build(changed)
    assert _lists(spark, cfg) == before


@pytest.mark.slow
def test_the_funnel_ranks_the_retrievers_candidates_beside_the_svd_ones(spark, tmp_lake) -> None:
    """features (serving) + a stand-in model + a tiny stage-1 retriever; the backtest with
    funnel_sources [svd, stage1]: svd's funnel rows repeat the configured lists' measures, stage1's
    come from the retriever's version and its own lists."""
    from relisten_spark.cli import run_command
    from relisten_spark.features import manifest
    from relisten_spark.features.catalogue import gbdt_columns
    from relisten_spark.retrieval.sequences import write_sequences

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "retrieval"))
    from retrieval_fixtures import save_tiny_retriever

    cfg = _serving_cfg(tmp_lake)
    cfg = cfg.model_copy(
        update={
            "evaluation": cfg.evaluation.model_copy(update={"funnel_sources": ["svd", "stage1"]}),
            "retriever": cfg.retriever.model_copy(update={"max_len": 8}),
        }
    )
    frames = tiny_frames(spark)
    for name in ("events", "members", "songs", "song_extra"):
        lake.write(spark, getattr(frames, name), lake.table_path(cfg.lake.root, "bronze", name))
    run_command("features", cfg)
    serving = {s.name for s in manifest.profile_specs("serving")}
    _register(
        cfg.models.root,
        ["song_rec_cnt", *[c for c in gbdt_columns() if c in serving and c != "song_rec_cnt"]],
    )
    parent = save_tiny_retriever(cfg.models.root, write_sequences(spark, cfg, Path(cfg.models.root) / "seqs"))

    ((_, summary, _),) = run_command("backtest", cfg)
    assert summary["funnel_retriever_versions"] == {"stage1": parent}
    rows = lake.read(spark, backtest.metrics_path(cfg)).where(F.col("split") == "eval").toPandas()
    by_model = {m: dict(zip(part["metric"], part["value"], strict=True)) for m, part in rows.groupby("model")}
    assert by_model["funnel:story:svd"] == pytest.approx(by_model["topn:story"], nan_ok=True)
    assert set(by_model["funnel:story:stage1"]) == set(by_model["topn:story"])
    assert "funnel:story:stage1/eval" in summary["summary"]


def test_recs_section_shows_the_measures_and_the_trade_off(spark, tmp_lake) -> None:
    from relisten_spark.evaluation.recs_section import render_recs_section

    cfg = tmp_lake.model_copy(update={"scoring": tmp_lake.scoring.model_copy(update={"top_n": 2})})
    assert "run `relisten backtest`" in render_recs_section(spark, cfg, None)
    measured = [
        (surface, setting, metric, value)
        for surface in ("story", "shopping")
        for setting, shift in (("configured", 0.0), ("base", 0.0), ("pop0.1", 0.1))
        for metric, value in (
            ("ndcg@2", 0.3 - shift),
            ("catalog_coverage", 0.1 + shift),
            ("popularity_share", 0.8),
        )
    ]
    schema = "surface string, setting string, metric string, value double"
    rows = backtest.metric_rows(spark.createDataFrame(measured, schema), cfg, "bt-1", "eval")
    backtest.write_metrics(spark, cfg, rows)

    reason = [("artist_affinity", "you often play this artist", 0.6)]
    recs = [
        (date(2026, 12, 1), "u1", 1, "s1", 0.9, "v1", reason),
        (date(2026, 12, 2), "u1", 1, "s2", 0.8, "v1", reason),
    ]
    lake.write(
        spark,
        spark.createDataFrame(recs, schemas.RECS),
        score.recs_path(cfg, "story"),
        partition_by=["run_date"],
    )
    for name, schema in (
        ("songs", schemas.SONGS),
        ("song_extra", schemas.SONG_EXTRA),
        ("members", schemas.MEMBERS),
        ("events", schemas.EVENTS),
    ):
        rows = {
            "songs": [("s2", 1000, "7|8", "Artist Two", None, None, 3)],
            "song_extra": [("s2", "Song Two", None)],
        }
        lake.write(
            spark,
            spark.createDataFrame(rows.get(name, []), schema),
            lake.table_path(cfg.lake.root, "bronze", name),
        )

    page = render_recs_section(spark, cfg, "evaluate-run")

    assert page.startswith("<h2>")
    assert page.count('class="plotly-graph-div"') == 4  # two trade-off plots per surface
    assert "<script src" not in page
    assert "plotly.js v" not in page  # the page embeds plotly.js once, not the section
    assert "pop0.1" in page
    assert "<td>0.2000</td>" in page  # story's pop0.1 NDCG@2 in the settings table
    assert "shopping: no production lists" in page
    # the latest list of story, named from bronze, with its reasons
    assert (
        "<td>Song Two</td><td>Artist Two</td><td>7|8</td><td>0.8000</td>"
        "<td>you often play this artist (60%)</td>" in page
    )
