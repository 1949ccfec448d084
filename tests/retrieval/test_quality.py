"""Full-ranking evaluation: metrics of a planted case, exact factor top-K with heard exclusion,
the popularity list for a user a model has no vector for, and the retriever with its baselines
end to end into gold.metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyspark.sql import functions as F
from retrieval_fixtures import SONGS, TRAIN, save_tiny_retriever, write_bronze
from svd_tables import write_svd_tables

from relisten_spark import lake, schemas
from relisten_spark.config import load_config
from relisten_spark.retrieval import baselines, nearest, quality
from relisten_spark.retrieval.sequences import write_sequences
from relisten_spark.runtime import Held

pytestmark = pytest.mark.spark


def _values(df: Any) -> dict[tuple[str, str], float]:
    return {(r["model"], r["metric"]): r["value"] for r in df.collect()}


def _lists(df: Any) -> dict[str, list[str]]:
    """``{msno: song_ids by rank}`` of :data:`nearest.TOP_K_SCHEMA` rows."""
    out: dict[str, list[tuple[int, str]]] = {}
    for r in df.collect():
        out.setdefault(r["msno"], []).append((r["rank"], r["song_id"]))
    return {m: [s for _, s in sorted(v)] for m, v in out.items()}


def test_measure_of_a_planted_case(spark: Any) -> None:
    # eval events: u1 s1 (target 1), s2 (0); u2 s3 (1); u3 s4 (0), who has no list
    period = spark.createDataFrame(
        [("u1", "s1", 1), ("u1", "s2", 0), ("u2", "s3", 1), ("u3", "s4", 0)],
        "msno string, song_id string, target int",
    )
    lists = spark.createDataFrame(
        [("m", "u1", "s2", 0.9, 1), ("m", "u1", "s9", 0.8, 2), ("m", "u1", "s1", 0.7, 3)]
        + [("m", "u2", f"x{r}", 0.5, r) for r in range(1, 12)]
        + [("m", "u2", "s3", 0.1, 12)],
        "model string, msno string, song_id string, score double, rank int",
    )
    hold = quality.Holdout(period, period, None, "time")
    got = _values(quality.measure(lists, hold, ["m"]))
    idcg = 1 + 1 / np.log2(3)
    assert got[("m", "hr@10")] == pytest.approx(1 / 3)
    assert got[("m", "recall@10")] == pytest.approx(1 / 3)
    assert got[("m", "ndcg@10")] == pytest.approx((1 + 1 / np.log2(4)) / idcg / 3)
    assert got[("m", "hr@20")] == pytest.approx(2 / 3)
    assert got[("m", "ndcg@20")] == pytest.approx(((1 + 0.5) / idcg + 1 / np.log2(13)) / 3)
    assert got[("m", "event_recall@200")] == pytest.approx(3 / 4)
    assert got[("m", "event_recall_relisten@200")] == pytest.approx(1.0)


def test_factor_top_k_is_exact_and_leaves_heard_songs_out(spark: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    users, items = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(30, 3)).astype(np.float32)
    song_ids = [f"s{j:02d}" for j in range(30)]
    heard = {0: ["s03", "s07", "zz"], 2: song_ids[:28]}  # "zz" is outside the matrix
    items_df = spark.createDataFrame(
        [(s, v.tolist()) for s, v in zip(song_ids, items, strict=True)], "song_id string, vector array<float>"
    )
    nearest.write_item_vectors(items_df, str(tmp_path / "items"))
    users_df = spark.createDataFrame(
        [(f"u{u}", users[u].tolist(), heard.get(u)) for u in range(6)],
        "msno string, vector array<float>, heard array<string>",
    )
    got = nearest.factor_top_k(users_df, str(tmp_path / "items"), k=5, block_size=4).collect()
    lists: dict[str, list[tuple[int, str]]] = {}
    for r in got:
        lists.setdefault(r["msno"], []).append((r["rank"], r["song_id"]))
    scores = users.astype(np.float64) @ items.astype(np.float64).T
    for u in range(6):
        allowed = [j for j in range(30) if song_ids[j] not in heard.get(u, [])]
        want = sorted(allowed, key=lambda j: (-scores[u, j], j))[:5]
        assert sorted(lists[f"u{u}"]) == [(r + 1, song_ids[j]) for r, j in enumerate(want)]
    assert len(lists["u2"]) == 2  # only two songs left unheard


def test_svd_vectors_leave_out_members_without_factors(spark: Any, tmp_path: Path) -> None:
    # the feature job writes zeros for a member without fit rows: no vector, not a "list" of ties
    members = {"u1": [0.5, -1.0], "cold": [0.0, 0.0]}
    write_svd_tables(spark, str(tmp_path), members, {"s1": [1.0, 0.0], "s2": [0.0, 1.0]}, [3.0, 2.0])
    users, items = baselines.svd_vectors(spark, str(tmp_path), "serving")
    assert {r["msno"]: r["vector"] for r in users.collect()} == {"u1": [1.5, -2.0]}  # U diag(3, 2)
    assert items.count() == 2


def test_svd_fit_vectors_factorise_the_rows_given(spark: Any) -> None:
    """At full rank, users ``U diag(s)`` times items ``V`` give back the binary user x song matrix
    of the rows, keyed by the raw ids (a repeated pair counts once)."""
    pairs = [("u1", "s1"), ("u1", "s2"), ("u1", "s2"), ("u2", "s2"), ("u2", "s3"), ("u3", "s4"), ("u3", "s1")]
    rows = spark.createDataFrame(pairs, "msno string, song_id string")
    users, items = baselines.svd_fit_vectors(
        rows, load_config(None, ["features.svd_song_k=3"]).features, "the test rows"
    )
    u = {r["msno"]: np.array(r["vector"]) for r in users.collect()}
    v = {r["song_id"]: np.array(r["vector"]) for r in items.collect()}
    assert (sorted(u), sorted(v)) == (["u1", "u2", "u3"], ["s1", "s2", "s3", "s4"])
    for user in u:
        for song in v:
            assert float(u[user] @ v[song]) == pytest.approx(float((user, song) in pairs), abs=1e-5)


@pytest.mark.slow  # ALS, torch in the Python workers and a dozen Spark jobs: about a minute
def test_a_user_without_a_vector_gets_the_popularity_list_from_every_model(
    spark: Any, tmp_path: Path
) -> None:
    cfg = load_config(
        None, [f"lake.root={tmp_path / 'lake'}", f"models.root={tmp_path / 'models'}", "retriever.max_len=3"]
    )
    write_bronze(spark, cfg)
    version = save_tiny_retriever(cfg.models.root, write_sequences(spark, cfg, tmp_path / "work"))
    songs = sorted({s for _, _, s, *_ in TRAIN} | {s for s, *_ in SONGS})
    rng = np.random.default_rng(3)
    # u3 has events but no SVD factors (as if none were in the SVD's fit)
    members = {"u1": rng.normal(size=2).tolist(), "u2": rng.normal(size=2).tolist(), "u3": [0.0, 0.0]}
    write_svd_tables(
        spark, cfg.lake.root, members, {s: rng.normal(size=2).tolist() for s in songs}, [3.0, 2.0]
    )
    held = Held()
    try:
        hold = quality.eval_holdout(spark, cfg, held)
        # two more period users: u9 with no event before the period, u3 without SVD factors
        extra = hold.period.limit(1).drop("msno")
        period = hold.period.unionByName(extra.withColumn("msno", F.lit("u9"))).unionByName(
            extra.withColumn("msno", F.lit("u3"))
        )
        heard = nearest.heard_pairs(hold.before, period.select("msno").distinct())
        lists = quality.model_lists(
            spark, cfg, version, quality.Holdout(hold.before, period, heard, "time"), tmp_path / "work2"
        )
        got = {model: _lists(df) for model, df in lists.items()}
    finally:
        held.release()
    popular = got[quality.POPULARITY]
    assert set(popular) == {"u1", "u2", "u3", "u9"}
    assert set(popular["u9"][:2]) == {"s1", "s2"}  # the most played songs before the period (3 plays each)
    for model in (quality.RETRIEVER, quality.SVD, quality.SVD_BEFORE, quality.ALS):
        assert set(got[model]) == set(popular), model
        assert got[model]["u9"] == popular["u9"], model
    assert got[quality.SVD]["u3"] == popular["u3"]


@pytest.mark.slow  # ALS, torch in the Python workers and a dozen Spark jobs: about a minute
def test_evaluate_retriever_writes_the_models_metrics(spark: Any, tmp_path: Path) -> None:
    cfg = load_config(
        None, [f"lake.root={tmp_path / 'lake'}", f"models.root={tmp_path / 'models'}", "retriever.max_len=3"]
    )
    write_bronze(spark, cfg)
    seqs = write_sequences(spark, cfg, tmp_path / "work")
    version = save_tiny_retriever(cfg.models.root, seqs)
    metrics = lake.table_path(cfg.lake.root, "gold", "metrics")
    other = spark.createDataFrame(
        [("r0", "lightgbm", "full", "eval", "roc_auc", 0.7, "time")], schemas.METRICS
    )
    lake.write(spark, other, metrics)

    summary = quality.evaluate_retriever(spark, cfg, version)

    rows = lake.read(spark, metrics).collect()
    got = {(r["model"], r["metric"]): r["value"] for r in rows if r["split"] == "eval"}
    assert got[("lightgbm", "roc_auc")] == 0.7  # other rows stay
    models = {m for m, _ in got} - {"lightgbm"}
    # no SVD tables: no feature-job SVD; the SVD of the rows before the period needs none
    assert models == {quality.RETRIEVER, quality.POPULARITY, quality.SVD_BEFORE, quality.ALS}
    for model in models:
        for metric in ("hr@10", "ndcg@10", "recall@200", "hr@200", "event_recall@200"):
            assert 0.0 <= got[(model, metric)] <= 1.0
    # popularity before the eval period, heard songs left out: u1 gets [s9, s8] and hits s8 at
    # rank 2; u2 has heard every song but s3 and misses s1 (heard)
    assert got[(quality.POPULARITY, "hr@10")] == pytest.approx(0.5)
    assert got[(quality.POPULARITY, "ndcg@10")] == pytest.approx(0.5 / np.log2(3))
    assert got[(quality.POPULARITY, "event_recall_relisten@200")] == 0.0
    # the retriever ranks every unheard song: u1 and u2 have 2 and 1 of them, so recall@200 of
    # u1's s8 is certain and u2's heard s1 is never listed
    assert got[(quality.RETRIEVER, "recall@200")] == pytest.approx(0.5)
    assert summary["models"][quality.RETRIEVER]["recall@200"] == pytest.approx(0.5)
    assert {r["split_mode"] for r in rows if r["model"] in models} == {"time"}
