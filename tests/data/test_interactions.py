"""The generic interactions source: formats, the clock, quarantine, leave-one-out, ML-100k."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import ML100K

from relisten_spark import lake
from relisten_spark.config import Config, load_config
from relisten_spark.data import ingest, interactions
from relisten_spark.retrieval.sequences import holdout_parts

# a RecBole-style atomic file: typed header, tab-separated, an extra rating column, timestamps out
# of line order (two tied), a CRLF line, a blank line and two bad lines
INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "u1\tm3\t4\t300\n"
    "u2\tm1\t5\t100\r\n"
    "\n"
    "u1\tm1\t3\t100\n"
    "u2\t\t2\t400\n"
    "u2\tm2\t1\tlater\n"
    "u1\tm2\t5\t200\n"
)
ITEMS = (
    "item_id:token\tmovie_title:token_seq\tclass:token_seq\n"
    "m1\tToy Story\tAnimation Comedy\n"
    "m2\tHeat\tAction\n"
)


def _cfg(tmp_path: Path, *extra: str) -> Config:
    return load_config(
        None,
        [f"lake.root={tmp_path / 'lake'}", "data.source=interactions", *extra],
    )


def _events(spark: Any, cfg: Config) -> list[tuple[int, str, str]]:
    rows = lake.read(spark, lake.table_path(cfg.lake.root, "bronze", "events")).collect()
    return sorted((r["idx"], r["msno"], r["song_id"]) for r in rows)


@pytest.mark.slow
def test_recbole_file_ingests_in_timestamp_order_with_quarantine(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "inter.tsv").write_text(INTER)
    (tmp_path / "items.tsv").write_text(ITEMS)
    cfg = _cfg(
        tmp_path,
        f"data.interactions.path={tmp_path / 'inter.tsv'}",
        f"data.interactions.items_path={tmp_path / 'items.tsv'}",
    )
    summary = ingest.run(spark, cfg)
    assert summary["rows"]["events"] == 4
    # timestamp order; the tie at 100 is broken by line order (u2's line comes first)
    assert _events(spark, cfg) == [(0, "u2", "m1"), (1, "u1", "m1"), (2, "u1", "m2"), (3, "u1", "m3")]
    root = cfg.lake.root
    bad = lake.read(spark, lake.table_path(root, "bronze", "quarantine")).collect()
    assert sorted((r["line_number"], r["reason"]) for r in bad) == [
        (6, "empty item"),
        (7, "timestamp is not a number: 'later'"),
    ]
    songs = {r["song_id"]: r for r in lake.read(spark, lake.table_path(root, "bronze", "songs")).collect()}
    assert songs["m1"]["genre_ids"] == "Animation|Comedy"
    assert songs["m2"]["genre_ids"] == "Action"
    extra = lake.read(spark, lake.table_path(root, "bronze", "song_extra")).collect()
    assert {r["song_id"]: r["name"] for r in extra} == {"m1": "Toy Story", "m2": "Heat"}
    members = lake.read(spark, lake.table_path(root, "bronze", "members")).collect()
    assert sorted(r["msno"] for r in members) == ["u1", "u2"]
    # leave-one-out: per user the last event is eval, the one before calib
    events = lake.read(spark, lake.table_path(root, "bronze", "events"))
    parts = {(r["msno"], r["song_id"]): r["part"] for r in holdout_parts(events, cfg).collect()}
    assert parts == {("u1", "m3"): "eval", ("u1", "m2"): "calib", ("u1", "m1"): "fit", ("u2", "m1"): "eval"}


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("a,x\nb,y\na,z\n", "auto"),  # comma
        ("a x\nb   y\n a\tz \n", "whitespace"),  # runs of blanks (a tab among them)
    ],
)
def test_headerless_file_without_timestamp_keeps_the_line_order(
    spark: Any, tmp_path: Path, text: str, delimiter: str
) -> None:
    path = tmp_path / "log.txt"
    path.write_text(text)
    conf = _cfg(
        tmp_path,
        f"data.interactions.path={path}",
        "data.interactions.header=false",
        f"data.interactions.delimiter={delimiter}",
    ).data.interactions
    parsed = interactions.parse_interactions(interactions.read_text_table(spark, str(path), conf))
    rows = interactions.events_frame(parsed).collect()
    assert sorted((r["idx"], r["msno"], r["song_id"]) for r in rows) == [
        (0, "a", "x"),
        (1, "b", "y"),
        (2, "a", "z"),
    ]


def test_header_without_user_or_item_is_refused(spark: Any, tmp_path: Path) -> None:
    from relisten_spark.errors import InputError

    path = tmp_path / "log.csv"
    path.write_text("person,thing\na,x\n")
    conf = _cfg(tmp_path, f"data.interactions.path={path}").data.interactions
    with pytest.raises(InputError, match="no user or no item column"):
        interactions.parse_interactions(interactions.read_text_table(spark, str(path), conf))


@pytest.mark.skipif(not ML100K.is_dir(), reason="MovieLens-100k not found in the shared data folder")
def test_movielens_100k_reads_through_the_interactions_source(spark: Any, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, f"data.interactions.path={ML100K / 'ml-100k.inter'}")
    conf = cfg.data.interactions
    parsed = interactions.parse_interactions(interactions.read_text_table(spark, conf.path, conf))
    [row] = parsed.selectExpr(
        "count(*) AS n",
        "count(reason) AS bad",
        "count(DISTINCT user) AS users",
        "count(DISTINCT item) AS items",
    ).collect()
    assert (row["n"], row["bad"], row["users"], row["items"]) == (100_000, 0, 943, 1682)
    songs, _ = interactions.item_frames(
        interactions.read_text_table(spark, str(ML100K / "ml-100k.item"), conf)
    )
    assert songs.count() == 1682
