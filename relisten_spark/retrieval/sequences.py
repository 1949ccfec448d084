"""The retriever's listening sequences: Parquet shards under a work folder, built in Spark.

Inputs: ``bronze.events`` and ``bronze.songs`` (through :mod:`relisten_spark.lake`). Every song of
the log gets an item index (1.., by ``song_id``; 0 = padding / unknown), and every event five
tokens: the item, its artist (``artist_name``), its first genre (``genre_ids`` up to the first
``|``), its language and the event's source context (``source_system_tab|source_screen_name|
source_type``); each token vocabulary counts from 1, 0 is padding / unknown.

The holdout protocol (:func:`holdout_parts`) splits the train rows into ``fit`` / ``calib`` /
``eval``: the engine's time split (:mod:`relisten_spark.splits`: rows before the holdout cutoff
are ``fit``) or, for ``data.source: interactions`` with ``protocol: leave_one_out``, per user the
last event (``eval``) and the one before (``calib``). Test-split rows are never used.

Written under ``work_dir`` (every table a folder of Parquet files):

* ``train/`` ``[user_index int, items, artists, genres, languages, sources array<int>]``: each
  user's ``fit`` events in time order, cut from the end into windows of ``max_len + 1`` events
  that overlap by one (inputs ``[:-1]``, next-item targets ``[1:]``: every ``fit`` event but the
  user's first is a target exactly once); one row per window of at least two events;
* ``refit/`` (``retriever.refit`` only): the same windows over each user's ``fit`` and
  ``calib`` events, the rows the refit trains on;
* ``calib/``, ``eval/``: the same token arrays (the last ``max_len`` events before the period,
  time order, not padded) plus ``targets array<int>`` (the distinct items of the user's period
  events, ascending) and ``relistened array<int>`` (those of events with ``target = 1``); one row
  per user with period events and at least one earlier event (``calib`` history: ``fit`` rows;
  ``eval`` history: ``fit`` and ``calib`` rows);
* ``items.parquet`` ``[item_index int, song_id string, artist int, genre int, language int,
  item_count long]``: one row per index 0..n_items (row 0 the padding), ``item_count`` the
  item's occurrences among the train rows' targets (and with ``retriever.refit``
  ``refit_count long``, among the refit rows' targets);
* ``users.parquet`` ``[user_index int, msno string]`` (0..users-1 by ``msno``);
* ``vocab.json``: :class:`Vocab`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from relisten_spark import lake, splits
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.runtime import Held, checkpoint

log = logging.getLogger(__name__)

TOKENS = ("items", "artists", "genres", "languages", "sources")
# the event column behind each token array
_TOKEN_COLUMNS = {
    "items": "item_index",
    "artists": "artist",
    "genres": "genre",
    "languages": "language",
    "sources": "source",
}
SOURCE_COLUMNS = ("source_system_tab", "source_screen_name", "source_type")
VOCAB_FILE = "vocab.json"
USERS_PER_FILE = 4096


@dataclass(frozen=True)
class Vocab:
    """Embedding sizes (padding row 0 included), ``max_len``, the number of users and the source
    context token of each source index (``source_tokens[i - 1]`` is index ``i``)."""

    items: int
    artists: int
    genres: int
    languages: int
    sources: int
    max_len: int
    users: int
    source_tokens: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocab:
        return cls(**data)


@dataclass(frozen=True)
class SequenceSet:
    """Where :func:`write_sequences` put its tables (folders under ``root``) and the vocab."""

    root: str
    vocab: Vocab

    @property
    def train(self) -> str:
        return f"{self.root}/train"

    @property
    def refit(self) -> str:
        return f"{self.root}/refit"

    @property
    def calib(self) -> str:
        return f"{self.root}/calib"

    @property
    def eval(self) -> str:
        return f"{self.root}/eval"

    @property
    def items(self) -> str:
        return f"{self.root}/items.parquet"

    @property
    def users(self) -> str:
        return f"{self.root}/users.parquet"

    @classmethod
    def load(cls, root: str | Path) -> SequenceSet:
        """The set written under ``root``."""
        text = (Path(root) / VOCAB_FILE).read_text(encoding="utf-8")
        return cls(str(root).rstrip("/"), Vocab.from_dict(json.loads(text)))


# ---- protocol -----------------------------------------------------------------------------------
def leave_one_out(cfg: Config) -> bool:
    """True when the holdout is per user (the interactions source's leave-one-out protocol)."""
    return cfg.data.source == "interactions" and cfg.data.interactions.protocol == "leave_one_out"


def holdout_parts(events: DataFrame, cfg: Config) -> DataFrame:
    """The train rows of ``events`` (schemas.EVENTS) with ``part`` in {fit, calib, eval}.

    Leave-one-out: per user, the last event by ``idx`` is ``eval``, the one before ``calib``.
    Otherwise the time split of :func:`relisten_spark.splits.assign_eval_split` (always by time:
    a sequence needs its order).
    """
    train = events.where(
        (F.col("split") == "train") & F.col("msno").isNotNull() & F.col("song_id").isNotNull()
    )
    if leave_one_out(cfg):
        back = F.row_number().over(Window.partitionBy("msno").orderBy(F.desc("idx")))
        part = F.when(back == 1, "eval").when(back == 2, "calib").otherwise("fit")
        return train.withColumn("part", part)
    protocol = cfg.evaluation.model_copy(update={"split": "time"})
    return (
        splits.assign_eval_split(train, protocol).withColumnRenamed("eval_split", "part").drop("split_mode")
    )


# ---- vocabularies -------------------------------------------------------------------------------
def dense_index(values: DataFrame, column: str, name: str, start: int = 1) -> DataFrame:
    """``[column, name int]``: the distinct non-null values of ``column`` numbered ``start..`` in
    ascending order (one ordered window: vocabularies are small next to the log)."""
    distinct = values.select(column).where(F.col(column).isNotNull()).distinct()
    number = F.row_number().over(Window.orderBy(column)) - 1 + start
    return distinct.select(column, number.cast("int").alias(name))


def first_genre(genre_ids: Column) -> Column:
    """The first genre of a ``|``-separated ``genre_ids`` (null when empty)."""
    first = F.substring_index(genre_ids, "|", 1)
    return F.when(first != "", first)


def source_token(events: DataFrame) -> Column:
    """An event's source context token; null when all three source columns are null."""
    parts = [F.coalesce(F.col(c), F.lit("")) for c in SOURCE_COLUMNS]
    present = F.coalesce(*[F.col(c) for c in SOURCE_COLUMNS]).isNotNull()
    return F.when(present, F.concat_ws("|", *parts))


def item_table(events: DataFrame, songs: DataFrame) -> DataFrame:
    """``[item_index, song_id, artist, genre, language]`` for every song of ``events`` (index
    1.. by song_id) plus the padding row 0; metadata tokens from ``songs`` (0 when unknown)."""
    items = dense_index(events, "song_id", "item_index")
    meta = songs.dropDuplicates(["song_id"]).select(
        "song_id",
        F.col("artist_name").alias("_artist"),
        first_genre(F.col("genre_ids")).alias("_genre"),
        F.col("language").cast("string").alias("_language"),
    )
    with_meta = items.join(meta, "song_id", "left")
    for raw, name in (("_artist", "artist"), ("_genre", "genre"), ("_language", "language")):
        codes = dense_index(with_meta, raw, name)
        with_meta = with_meta.join(F.broadcast(codes), raw, "left").drop(raw)
    padding = items.sparkSession.createDataFrame(
        [(0, None, 0, 0, 0)], "item_index int, song_id string, artist int, genre int, language int"
    )
    columns = ["item_index", "song_id", "artist", "genre", "language"]
    return with_meta.select(*columns).fillna(0, ["artist", "genre", "language"]).unionByName(padding)


def encode_events(events: DataFrame, items: DataFrame, sources: DataFrame) -> DataFrame:
    """``events`` ``[idx, msno, song_id, <source columns>, ...]`` with the token columns
    ``item_index, artist, genre, language, source`` (0 for a song or source outside the tables).

    ``items``: :func:`item_table`; ``sources``: ``[source_token, source int]``.
    """
    tokens = items.where(F.col("item_index") > 0).select(
        "song_id", "item_index", "artist", "genre", "language"
    )
    coded = (
        events.withColumn("source_token", source_token(events))
        .join(F.broadcast(tokens), "song_id", "left")  # a row per song: one shuffle (by user) less
        .join(F.broadcast(sources), "source_token", "left")
        .drop("source_token")
    )
    return coded.fillna(0, list(_TOKEN_COLUMNS.values()))


# ---- sequences ----------------------------------------------------------------------------------
def _user_events(rows: DataFrame, key: str) -> DataFrame:
    """``[key, _ev]``: each ``key``'s rows (``idx`` and the token columns) as structs, by ``idx``."""
    event = F.struct("idx", *_TOKEN_COLUMNS.values())
    return rows.groupBy(key).agg(F.sort_array(F.collect_list(event)).alias("_ev"))


def _tokens(events: Column) -> list[Column]:
    """The token arrays (:data:`TOKENS`) of an array of event structs."""
    return [events[column].cast("array<int>").alias(token) for token, column in _TOKEN_COLUMNS.items()]


def last_events(rows: DataFrame, n: int, key: str = "user_index", heard: bool = False) -> DataFrame:
    """``[key, items, artists, genres, languages, sources]``: each ``key``'s last ``n`` rows of
    ``rows`` (token columns of :func:`encode_events` and ``idx``) by ``idx``, in time order; with
    ``heard`` also ``heard array<int>``, the distinct known item indices of all its rows, ascending."""
    start = F.greatest(F.size("_ev") - F.lit(n) + 1, F.lit(1))
    columns = [F.col(key), *_tokens(F.slice(F.col("_ev"), start, F.lit(n)))]
    if heard:
        known = F.filter(F.col("_ev.item_index"), lambda i: i > 0)
        columns.append(F.array_sort(F.array_distinct(known)).cast("array<int>").alias("heard"))
    return _user_events(rows, key).select(*columns)


def windows(rows: DataFrame, n: int, key: str = "user_index") -> DataFrame:
    """:func:`last_events`' columns, one row per window: each ``key``'s rows cut from the end into
    windows of ``n`` events overlapping by one (stride ``n - 1``), so that every event but the
    first is a next-item target (``items[1:]``) of exactly one window; windows of one event are
    dropped."""
    size, stride = F.size("_ev"), n - 1
    last = F.greatest(F.ceil((size - 1) / F.lit(stride)).cast("int") - 1, F.lit(0))
    cut = _user_events(rows, key).select(key, "_ev", F.explode(F.sequence(F.lit(0), last)).alias("_w"))
    end = F.size("_ev") - F.col("_w") * F.lit(stride)
    start = F.greatest(end - F.lit(n) + 1, F.lit(1))
    window = F.slice(F.col("_ev"), start, end - start + 1)
    return cut.select(key, *_tokens(window)).where(F.size("items") >= 2)


def period_rows(history: DataFrame, period: DataFrame, n: int) -> DataFrame:
    """One row per user with ``period`` events and ``history``: the last ``n`` history events
    (:func:`last_events`), ``targets`` and ``relistened`` (distinct items, ascending)."""
    relisten = F.when(F.col("target") == 1, F.col("item_index"))
    targets = period.groupBy("user_index").agg(
        F.array_sort(F.collect_set("item_index")).cast("array<int>").alias("targets"),
        F.array_sort(F.collect_set(relisten)).cast("array<int>").alias("relistened"),
    )
    return last_events(history, n).join(targets, "user_index")


def _item_counts(train: DataFrame, items: DataFrame) -> DataFrame:
    """``items`` with ``item_count``: occurrences among the train rows' targets (``items[1:]``)."""
    targets = train.select(F.explode(F.slice("items", 2, F.size("items"))).alias("item_index"))
    counts = targets.groupBy("item_index").agg(F.count("*").alias("item_count"))
    return items.join(counts, "item_index", "left").fillna(0, ["item_count"])


def _write(df: DataFrame, path: str, files: int) -> None:
    """``df`` as ``files`` Parquet files under ``path``, range-partitioned and sorted by its first column."""
    key = df.columns[0]
    df.repartitionByRange(files, key).sortWithinPartitions(key).write.mode("overwrite").parquet(path)


def _vocab(items: DataFrame, sources: DataFrame, users: int, max_len: int) -> Vocab:
    """Vocabulary sizes from the written tables (small aggregates) and the source tokens."""
    [sizes] = items.agg(*[F.max(c).alias(c) for c in ("item_index", "artist", "genre", "language")]).collect()
    tokens = [r["source_token"] for r in sources.orderBy("source").collect()]  # one per source context
    return Vocab(
        items=int(sizes["item_index"]) + 1,
        artists=int(sizes["artist"]) + 1,
        genres=int(sizes["genre"]) + 1,
        languages=int(sizes["language"]) + 1,
        sources=len(tokens) + 1,
        max_len=max_len,
        users=users,
        source_tokens=tokens,
    )


def read_inputs(spark: SparkSession, cfg: Config) -> tuple[DataFrame, DataFrame]:
    """``bronze.events`` and ``bronze.songs`` of ``cfg.lake.root``."""
    frames = []
    for name in ("events", "songs"):
        path = lake.table_path(cfg.lake.root, "bronze", name)
        if not lake.exists(path):
            raise InputError(f"bronze table {path} not found: run `relisten ingest` first")
        frames.append(lake.read(spark, path))
    return frames[0], frames[1]


def write_sequences(spark: SparkSession, cfg: Config, work_dir: str | Path) -> SequenceSet:
    """Build and write the retriever's tables under ``work_dir`` (see the module docstring)."""
    root = str(work_dir).rstrip("/")
    max_len = cfg.retriever.max_len
    events, songs = read_inputs(spark, cfg)
    held = Held()
    try:
        # materialised once: every table below reads them (the vocabularies are small, ``rows``
        # is the log's train rows)
        parted = held.persist(holdout_parts(events, cfg))
        items = checkpoint(item_table(events.where(F.col("song_id").isNotNull()), songs))
        sources = checkpoint(
            dense_index(events.select(source_token(events).alias("source_token")), "source_token", "source")
        )
        users = checkpoint(dense_index(parted, "msno", "user_index", start=0))
        rows = checkpoint(encode_events(parted, items, sources).join(users, "msno"))
        n_users = users.count()
        files = max(1, -(-n_users // USERS_PER_FILE))
        fit = rows.where(F.col("part") == "fit")
        train = windows(fit, max_len + 1)
        _write(train, f"{root}/train", files)
        train_back = spark.read.parquet(f"{root}/train")
        calib = period_rows(fit, rows.where(F.col("part") == "calib"), max_len)
        _write(calib, f"{root}/calib", files)
        history = rows.where(F.col("part") != "eval")
        _write(period_rows(history, rows.where(F.col("part") == "eval"), max_len), f"{root}/eval", files)
        items_out = _item_counts(train_back, items).select(
            "item_index", "song_id", "artist", "genre", "language", "item_count"
        )
        if cfg.retriever.refit:
            _write(windows(history, max_len + 1), f"{root}/refit", files)
            refit = _item_counts(spark.read.parquet(f"{root}/refit"), items)
            items_out = items_out.join(
                refit.select("item_index", F.col("item_count").alias("refit_count")), "item_index"
            )
        _write(items_out, f"{root}/items.parquet", 1)
        _write(users.select("user_index", "msno"), f"{root}/users.parquet", 1)
        vocab = _vocab(items, sources, n_users, max_len)
    finally:
        held.release()
    Path(root).mkdir(parents=True, exist_ok=True)
    (Path(root) / VOCAB_FILE).write_text(json.dumps(vocab.to_dict(), indent=2), encoding="utf-8")
    log.info(
        "sequences: %d users, %d items, %d sources, max_len %d under %s",
        n_users,
        vocab.items - 1,
        vocab.sources - 1,
        max_len,
        root,
    )
    return SequenceSet(root, vocab)
