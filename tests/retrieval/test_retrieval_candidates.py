"""``relisten candidates``: the blocked top-K, the retriever adapter, the sources mix, the atomic
partition write, and ``relisten score`` drawing from silver.candidates."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pytest
import torch
from retrieval_fixtures import TEST, TRAIN, save_tiny_retriever, write_bronze

from relisten_spark import lake
from relisten_spark.config import Config, load_config
from relisten_spark.retrieval import candidates, nearest
from relisten_spark.retrieval.predict import load_retriever
from relisten_spark.retrieval.sequences import write_sequences

pytestmark = pytest.mark.spark


def test_block_top_k_leaves_out_excluded_pairs() -> None:
    users = np.array([[1.0], [1.0]], dtype=np.float32)
    items = np.array([[5.0], [4.0], [3.0], [2.0]], dtype=np.float32)
    pos, val = nearest.block_top_k(
        users, items, k=2, block_size=3, exclude=(np.array([0, 0]), np.array([0, 3]))
    )
    assert pos.tolist() == [[1, 2], [0, 1]]
    assert val.tolist() == [[4.0, 3.0], [5.0, 4.0]]
    pos, val = nearest.block_top_k(
        users[:1], items[:2], k=2, block_size=1, exclude=(np.array([0]), np.array([0]))
    )
    assert pos.tolist() == [[1, -1]]
    assert val[0, 1] == -np.inf  # fewer eligible items than k: the list ends with -inf at -1


@pytest.mark.parametrize("block_size", [7, 64, 100, 700])
def test_block_top_k_equals_a_full_sort_with_exclusions(block_size: int) -> None:
    """The contender search (groups of 64 scores, padded tails) keeps exactly the full sort's lists."""
    rng = np.random.default_rng(block_size)
    users = rng.normal(size=(9, 8)).astype(np.float32)
    items = rng.normal(size=(700, 8)).astype(np.float32)
    rows, cols = rng.integers(0, 9, 2000), rng.integers(0, 700, 2000)
    pos, val = nearest.block_top_k(users, items, k=25, block_size=block_size, exclude=(rows, cols))
    scores = torch.from_numpy(users) @ torch.from_numpy(items).T
    scores[torch.from_numpy(rows), torch.from_numpy(cols)] = -torch.inf
    for u in range(9):
        want = np.lexsort((np.arange(700), -scores[u].numpy()))[:25]
        assert pos[u].tolist() == want.tolist()
        assert np.allclose(val[u], scores[u].numpy()[want], atol=1e-5)


@pytest.mark.parametrize("block_size", [1, 5, 64, 100])
def test_block_top_k_keeps_the_lower_positions_of_plays_tied_at_the_cut(block_size: int) -> None:
    """Popularity (one-dimensional scores, many ties): the list is exactly the first ``k`` of a
    sort by plays descending, then position."""
    rng = np.random.default_rng(block_size)
    plays = rng.integers(0, 6, size=(300, 1)).astype(np.float32)
    pos, _ = nearest.block_top_k(np.ones((2, 1), np.float32), plays, k=40, block_size=block_size)
    want = np.lexsort((np.arange(300), -plays[:, 0]))[:40]
    assert pos.tolist() == [want.tolist()] * 2


def _lists(rows: list[Any]) -> dict[str, list[str]]:
    out: dict[str, list[tuple[int, str]]] = {}
    for r in rows:
        out.setdefault(r["msno"], []).append((r["rank"], r["song_id"]))
    return {u: [s for _, s in sorted(v)] for u, v in out.items()}


def test_mix_takes_quotas_in_order_then_fills(spark: Any) -> None:
    schema = "msno string, song_id string, score double, rank int"
    retriever = spark.createDataFrame(
        [("u", s, 1.0 / r, r) for r, s in enumerate(["a", "b", "c", "d"], 1)] + [("v", "a", 1.0, 1)], schema
    )
    popular = spark.createDataFrame(
        [("u", s, 10.0 - r, r) for r, s in enumerate(["b", "x", "y"], 1)]
        + [("v", s, 10.0 - r, r) for r, s in enumerate(["a", "z"], 1)],
        schema,
    )
    mixed = candidates.mix({"retriever": retriever, "popular": popular}, {"retriever": 2, "popular": 2}, k=5)
    rows = mixed.collect()
    # u: retriever's a, b (quota 2); popular's b (taken) and x (quota 2); then the next by rank: c, y
    assert _lists(rows) == {"u": ["a", "b", "x", "c", "y"], "v": ["a", "z"]}
    source = {(r["msno"], r["song_id"]): r["source"] for r in rows}
    assert source[("u", "b")] == "retriever"
    assert source[("u", "y")] == "popular"
    assert source[("v", "a")] == "retriever"


def test_mix_of_one_source_is_its_list_cut_at_k(spark: Any) -> None:
    schema = "msno string, song_id string, score double, rank int"
    popular = spark.createDataFrame(
        [("u", s, 10.0 - r, r) for r, s in enumerate(["b", "x", "y"], 1)] + [("v", "a", 9.0, 1)], schema
    )
    alone = candidates.mix({"popular": popular}, {"popular": 1}, k=2)
    empty = spark.createDataFrame([], schema)
    general = candidates.mix({"popular": popular, "svd": empty}, {"popular": 1, "svd": 1}, k=2)
    rows = sorted(alone.collect())
    assert rows == sorted(general.collect())
    assert [(r["msno"], r["song_id"], r["rank"], r["source"]) for r in rows] == [
        ("u", "b", 1, "popular"),
        ("u", "x", 2, "popular"),
        ("v", "a", 1, "popular"),
    ]


@pytest.fixture(scope="module")
def tiny_lake(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The tiny log's bronze tables (all the ``svd`` source reads)."""
    base = tmp_path_factory.mktemp("cands")
    cfg = load_config(
        None,
        [
            f"lake.root={base / 'lake'}",
            f"models.root={base / 'models'}",
            "retriever.max_len=3",
            "scoring.candidates=3",
            "scoring.candidate_sources={retriever: 2, popular: 2}",
            "scoring.run_date=2026-11-23",
        ],
    )
    write_bronze(spark, cfg)
    return cfg


@pytest.fixture(scope="module")
def tiny(spark: Any, tiny_lake: Config, tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, str]:
    """``tiny_lake`` and a tiny retriever version over its sequences."""
    seqs = write_sequences(spark, tiny_lake, tmp_path_factory.mktemp("cands_work"))
    return tiny_lake, save_tiny_retriever(tiny_lake.models.root, seqs)


@pytest.mark.slow
def test_retriever_lists_are_the_exact_top_k_without_heard_songs(
    spark: Any, tiny: tuple[Config, str]
) -> None:
    cfg, version = tiny
    folder = nearest.resolve_retriever(cfg.models.root, version)
    events = lake.read(spark, lake.table_path(cfg.lake.root, "bronze", "events"))
    inputs = nearest.retriever_inputs(spark, folder, events, exclude_heard=True)
    got = _lists(nearest.retriever_top_k(inputs, cfg.models.root, version, k=4, block_size=2).collect())

    model = load_retriever(cfg.models.root, version)
    matrix, songs = model.item_matrix(), model.items["song_id"].tolist()
    by_user = {r["msno"]: r for r in inputs.collect()}
    played: dict[str, set[str]] = {}
    for r in events.select("msno", "song_id").collect():
        played.setdefault(r["msno"], set()).add(r["song_id"])
    for user, row in by_user.items():
        tokens = [
            np.array([row[t]], dtype=np.int64) for t in ("items", "artists", "genres", "languages", "sources")
        ]
        scores = (model.user_vectors(*tokens) @ matrix.T)[0]
        assert row["heard"] == sorted(i for i in range(1, len(songs)) if songs[i] in played[user])
        unheard = [i for i in range(1, len(songs)) if songs[i] not in played[user]]
        want = sorted(unheard, key=lambda i: (-scores[i], i))[:4]
        assert got.get(user, []) == [songs[i] for i in want]
    assert "u2" not in got or "s1" not in got["u2"]  # heard


@pytest.mark.slow
def test_candidates_stage_writes_k_rows_per_user_atomically(spark: Any, tiny: tuple[Config, str]) -> None:
    cfg, _ = tiny
    first = candidates.run(spark, cfg)
    path = candidates.candidates_path(cfg)
    rows = lake.read(spark, path).collect()
    per_user: dict[str, list[Any]] = {}
    for r in rows:
        per_user.setdefault(r["msno"], []).append(r)
    heard = {
        (r["msno"], r["song_id"])
        for r in lake.read(spark, lake.table_path(cfg.lake.root, "bronze", "events")).collect()
    }
    # u1 heard all 9 songs (none left), u2 all but s3; the others get K = 3
    assert {u: len(v) for u, v in per_user.items()} == {"u2": 1, "u3": 3, "u4": 3, "u5": 3}
    assert [r["song_id"] for r in per_user["u2"]] == ["s3"]
    assert all((r["msno"], r["song_id"]) not in heard for r in rows)
    assert {r["source"] for r in rows} <= {"retriever", "popular"}
    assert sorted(r["rank"] for r in per_user["u3"]) == [1, 2, 3]
    assert first["candidate_sources"] == {
        s: sum(r["source"] == s for r in rows) for s in {r["source"] for r in rows}
    }
    # a rerun of the date replaces its partition in one commit; another date is another partition
    before = lake.version(path)
    candidates.run(spark, cfg)
    assert lake.version(path) == before + 1
    assert lake.read(spark, path).count() == len(rows)
    other = cfg.model_copy(
        update={"scoring": cfg.scoring.model_copy(update={"run_date": date(2026, 11, 24)})}
    )
    candidates.run(spark, other)
    dates = [str(r["run_date"]) for r in lake.read(spark, path).select("run_date").distinct().collect()]
    assert sorted(dates) == ["2026-11-23", "2026-11-24"]


def test_svd_source_is_the_svd_of_the_whole_log(spark: Any, tiny_lake: Config) -> None:
    """The ``svd`` source factorises every row of the log (the tiny lake has no feature-job SVD
    tables to read): each user's songs are the top unheard songs of the rank-2 ``U diag(s) V^T``
    of the binary user x song matrix, u4 (seen only in the test rows) included."""
    cfg = tiny_lake.model_copy(
        update={
            "scoring": tiny_lake.scoring.model_copy(update={"candidate_sources": {"svd": 3}}),
            "features": tiny_lake.features.model_copy(update={"svd_song_k": 2}),
        }
    )
    candidates.run(spark, cfg)
    users = sorted({r[1] for r in TRAIN + TEST})
    songs = sorted({r[2] for r in TRAIN + TEST})
    played = np.zeros((len(users), len(songs)))
    for _, msno, song, *_ in TRAIN + TEST:
        played[users.index(msno), songs.index(song)] = 1
    u, s, vt = np.linalg.svd(played)
    approx = (u[:, :2] * s[:2]) @ vt[:2]
    got: dict[str, list[tuple[str, float]]] = {}
    stored = candidates.read_candidates(spark, cfg, "2026-11-23")
    assert stored is not None
    for r in stored.orderBy("rank").collect():
        assert r["source"] == "svd"
        got.setdefault(r["msno"], []).append((r["song_id"], r["score"]))
    assert set(got) == {"u2", "u3", "u4", "u5"}  # u1 heard every song
    for msno, rows in got.items():
        i = users.index(msno)
        best = sorted((approx[i, j] for j in range(len(songs)) if not played[i, j]), reverse=True)[:3]
        assert [score for _, score in rows] == pytest.approx(best, abs=1e-4)
        for song, score in rows:
            assert not played[i, songs.index(song)]
            assert score == pytest.approx(approx[i, songs.index(song)], abs=1e-4)


@pytest.mark.slow
def test_score_draws_its_pool_from_silver_candidates(spark: Any, tiny: tuple[Config, str]) -> None:
    from relisten_spark.features.bronze import read_bronze
    from relisten_spark.runtime import Held
    from relisten_spark.scoring import score

    cfg, _ = tiny
    candidates.run(spark, cfg)
    stored = candidates.read_candidates(spark, cfg, "2026-11-23")
    assert stored is not None
    assert candidates.read_candidates(spark, cfg, "1999-01-01") is None  # score falls back to SVD
    held = Held()
    try:
        frames = read_bronze(spark, cfg)
        cands = score.build_pairs(
            spark, cfg, frames, held, users=stored.select("msno").distinct(), stored=stored
        )
        pairs = cands.pairs.where("surface = 'shopping'").collect()
        fed = score.sources_fed(cands.pairs, stored)
    finally:
        held.release()
    stored_pairs = {(r["msno"], r["song_id"]) for r in stored.collect()}
    nearest_pairs = {(r["msno"], r["song_id"]) for r in pairs if r["source"] == "nearest"}
    assert nearest_pairs == stored_pairs  # shopping excludes nothing and has no length bounds
    assert set(fed) <= {"retriever", "popular", "popular_fill"}
    assert sum(v for k, v in fed.items() if k != "popular_fill") > 0
