"""Top-N list metrics against a direct computation on planted lists."""

from __future__ import annotations

import math

import pytest

from relisten_spark.topn import event_recall, ranking_metrics

pytestmark = pytest.mark.spark

# user -> ranked list; user -> relevant items
LISTS = {"a": ["s1", "s2", "s3"], "b": ["s4", "s5", "s6"], "c": ["s1", "s7", "s8"]}
RELEVANT = {"a": ["s2"], "b": ["s9"], "c": ["s8", "s1", "s5"], "d": ["s1"]}  # d has no list


def _expected(k: int) -> dict[str, float]:
    hr, recall, ndcg, mrr = [], [], [], []
    for u, rel in RELEVANT.items():
        ranks = [i + 1 for i, s in enumerate(LISTS.get(u, [])) if s in rel]
        top = [r for r in ranks if r <= k]
        hr.append(1.0 if top else 0.0)
        recall.append(len(top) / len(rel))
        idcg = sum(1 / math.log2(i + 1) for i in range(1, min(len(rel), k) + 1))
        ndcg.append(sum(1 / math.log2(r + 1) for r in top) / idcg)
        mrr.append(1 / min(ranks) if ranks else 0.0)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return {f"hr@{k}": mean(hr), f"recall@{k}": mean(recall), f"ndcg@{k}": mean(ndcg), "mrr": mean(mrr)}


def test_ranking_metrics_match_a_direct_computation(spark):
    recs = spark.createDataFrame(
        [(u, s, i + 1) for u, items in LISTS.items() for i, s in enumerate(items)],
        "msno string, song_id string, rank int",
    )
    rel = spark.createDataFrame(
        [(u, s) for u, items in RELEVANT.items() for s in items] + [("a", "s2")],
        "msno string, song_id string",
    )
    got = {r["metric"]: r["value"] for r in ranking_metrics(recs, rel, [1, 2, 3]).collect()}
    for k in (1, 2, 3):
        for name, value in _expected(k).items():
            assert got[name] == pytest.approx(value), name
    assert got["hr@1"] == pytest.approx(1 / 4)  # only c's first song is relevant


def test_ranking_metrics_per_group_and_event_recall(spark):
    recs = spark.createDataFrame(
        [("x", "u", "s1", 1), ("x", "u", "s2", 2), ("y", "u", "s3", 1)],
        "surface string, msno string, song_id string, rank int",
    )
    events = spark.createDataFrame(
        [("x", "u", "s2"), ("x", "u", "s2"), ("x", "u", "s9"), ("y", "u", "s3")],
        "surface string, msno string, song_id string",
    )
    by = {
        (r["surface"], r["metric"]): r["value"]
        for r in ranking_metrics(recs, events, [1], ["surface"]).collect()
    }
    assert by[("x", "hr@1")] == 0.0
    assert by[("x", "mrr")] == pytest.approx(0.5)
    assert by[("y", "ndcg@1")] == 1.0
    rec = {
        (r["surface"], r["metric"]): r["value"] for r in event_recall(recs, events, 2, ["surface"]).collect()
    }
    assert rec[("x", "event_recall@2")] == pytest.approx(2 / 3)
    assert rec[("y", "event_recall@2")] == 1.0
