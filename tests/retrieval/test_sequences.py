"""The retriever's sequences on a tiny hand-made log: order, truncation, the cutoff, the tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from retrieval_fixtures import write_bronze

from relisten_spark import lake
from relisten_spark.config import Config
from relisten_spark.retrieval.sequences import SequenceSet, holdout_parts, write_sequences


def _rows(path: str) -> dict[int, dict[str, Any]]:
    table = pq.read_table(path).to_pylist()
    return {row[next(iter(row))]: row for row in table}


@pytest.fixture(scope="module")
def written(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, SequenceSet]:
    from relisten_spark.config import load_config

    base = tmp_path_factory.mktemp("seq")
    cfg = load_config(None, [f"lake.root={base / 'lake'}", "retriever.max_len=3", "retriever.refit=true"])
    write_bronze(spark, cfg)
    return cfg, write_sequences(spark, cfg, base / "work")


def test_train_windows_cover_the_events_before_the_cutoff_in_order(
    written: tuple[Config, SequenceSet],
) -> None:
    _, seqs = written
    table = pq.read_table(seqs.train).to_pylist()
    windows = sorted((r["user_index"], r["items"]) for r in table)
    # users 0=u1, 1=u2; u3 and u5 have one fit event each (no next-item pair). Windows of
    # max_len + 1 = 4 events from the end, overlapping by one: every fit event but the first is
    # a target once; nothing at or after the cutoff (idx 16: u1's s7, s8 and test s9)
    assert windows == [
        (0, [1, 2, 3]),
        (0, [3, 4, 5, 6]),
        (1, [1, 2]),
        (1, [2, 4, 5, 6]),
        (1, [6, 7, 8, 9]),
    ]
    last = next(r for r in table if r["items"] == [3, 4, 5, 6])
    assert last["artists"] == [1, 0, 0, 0]  # s3 is by A (1); s4.. have no metadata
    assert last["genres"] == [0, 0, 0, 0]
    sources = {token: i + 1 for i, token in enumerate(seqs.vocab.source_tokens)}
    discover, library = sources["discover||"], sources["my library|Local playlist more|local-library"]
    assert last["sources"] == [0, discover, library, discover]
    tokens = ("artists", "genres", "languages", "sources")
    assert all(len(r[t]) == len(r["items"]) for r in table for t in tokens)


def test_refit_windows_add_the_calib_events(written: tuple[Config, SequenceSet]) -> None:
    """``retriever.refit``: the same windows over the fit and calib events (u1's calib s7, u3's s1),
    and each item's count among their targets."""
    _, seqs = written
    windows = sorted((r["user_index"], r["items"]) for r in pq.read_table(seqs.refit).to_pylist())
    assert windows == [
        (0, [1, 2, 3, 4]),
        (0, [4, 5, 6, 7]),
        (1, [1, 2]),
        (1, [2, 4, 5, 6]),
        (1, [6, 7, 8, 9]),
        (2, [2, 1]),
    ]
    items = _rows(seqs.items)
    assert [items[i]["refit_count"] for i in range(10)] == [0, 1, 2, 1, 2, 2, 2, 2, 1, 1]


def test_calib_and_eval_rows_hold_the_history_before_their_period(
    written: tuple[Config, SequenceSet],
) -> None:
    _, seqs = written
    calib, evals = _rows(seqs.calib), _rows(seqs.eval)
    assert sorted(calib) == [0, 2]  # u1 (s7) and u3 (s1); u3 has one history event
    assert (calib[0]["items"], calib[0]["targets"], calib[0]["relistened"]) == ([4, 5, 6], [7], [7])
    assert (calib[2]["items"], calib[2]["targets"], calib[2]["relistened"]) == ([2], [1], [])
    assert sorted(evals) == [0, 1]
    assert (evals[0]["items"], evals[0]["targets"], evals[0]["relistened"]) == ([5, 6, 7], [8], [])
    assert (evals[1]["items"], evals[1]["targets"], evals[1]["relistened"]) == ([7, 8, 9], [1], [1])


def test_items_users_and_vocab(written: tuple[Config, SequenceSet], tmp_path: Path) -> None:
    _, seqs = written
    items = _rows(seqs.items)
    assert sorted(items) == list(range(10))  # padding + s1..s9
    assert items[0]["song_id"] is None
    assert items[0]["item_count"] == 0
    assert [items[i]["song_id"] for i in range(1, 10)] == [f"s{i}" for i in range(1, 10)]
    assert [items[i]["artist"] for i in (1, 2, 3, 4)] == [1, 2, 1, 0]
    assert [items[i]["genre"] for i in (1, 2, 3)] == [1, 2, 0]  # first genre: "10" -> 1, "20" -> 2
    assert [items[i]["language"] for i in (1, 2, 3)] == [1, 1, 0]
    assert [items[i]["item_count"] for i in range(1, 10)] == [0, 2, 1, 2, 2, 2, 1, 1, 1]
    users = _rows(seqs.users)
    assert [users[i]["msno"] for i in range(4)] == ["u1", "u2", "u3", "u5"]  # u4 has test rows only
    vocab = SequenceSet.load(seqs.root).vocab
    assert (vocab.items, vocab.artists, vocab.genres, vocab.languages, vocab.sources) == (10, 3, 3, 2, 3)
    assert (vocab.max_len, vocab.users) == (3, 4)


def test_leave_one_out_takes_each_users_last_two_events(
    spark: Any, written: tuple[Config, SequenceSet]
) -> None:
    cfg, _ = written
    loo = cfg.model_copy(update={"data": cfg.data.model_copy(update={"source": "interactions"})})
    events = lake.read(spark, lake.table_path(cfg.lake.root, "bronze", "events"))
    parts = {(r["msno"], r["idx"]): r["part"] for r in holdout_parts(events, loo).collect()}
    assert (parts[("u1", 18)], parts[("u1", 16)], parts[("u1", 15)]) == ("eval", "calib", "fit")
    assert (parts[("u2", 19)], parts[("u2", 14)], parts[("u2", 13)]) == ("eval", "calib", "fit")
    assert parts[("u5", 5)] == "eval"
    assert ("u1", 21) not in parts  # test rows are never used
