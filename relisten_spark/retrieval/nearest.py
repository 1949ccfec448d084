"""Exact top-K of dot products, every user against every item, inside Spark tasks.

The core, :func:`block_top_k`, takes arrays: a user block ``[B, d]`` against an item matrix
``[N, d]``, ``block_size`` items at a time (a torch matrix product per step) with a running top-k,
so a step never holds more than ``B x block_size`` scores. Excluded (user, item) pairs (the songs
a user already heard, where the protocol or surface asks) score ``-inf`` and never enter a list.

Two Spark adapters feed it user blocks from ``mapInArrow`` (each Arrow batch cut into blocks of
``block_size`` users); the item matrix lives once per Python worker in
:data:`relisten_spark.runtime.MODELS`:

* :func:`factor_top_k` — factor models (the SVD's and ALS's item factors), the item matrix read
  from a Parquet folder written by :func:`write_item_vectors`;
* :func:`retriever_top_k` — the transformer retriever: the user vectors are computed in the task
  from the users' token sequences (``load_retriever``), the item matrix is the model's.

Both return ``[msno, song_id, score double, rank int]``: ranks ``1..k`` by score descending, then
item position ascending (items are sorted by ``song_id`` / ``item_index``, which follow the same
order); a user with fewer than ``k`` eligible items gets a shorter list.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import runtime
from relisten_spark.errors import InputError
from relisten_spark.models import registry
from relisten_spark.retrieval.predict import RetrieverModel, load_retriever
from relisten_spark.retrieval.sequences import TOKENS, VOCAB_FILE, Vocab, encode_events, last_events
from relisten_spark.retrieval.stream import token_matrix
from relisten_spark.retrieval.worker import ITEMS_FOLDER

TOP_K_SCHEMA = "msno string, song_id string, score double, rank int"
_TOP_K_ARROW = pa.schema(
    [("msno", pa.string()), ("song_id", pa.string()), ("score", pa.float64()), ("rank", pa.int32())]
)
Excluded = tuple[np.ndarray, np.ndarray]  # (user rows, item positions) of the pairs left out


def block_top_k(
    users: np.ndarray, items: np.ndarray, k: int, block_size: int, exclude: Excluded | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's ``k`` best items by ``users @ items.T``, ``block_size`` items at a time.

    ``users`` ``[B, d]``, ``items`` ``[N, d]`` (float32); ``exclude`` the (row, position) pairs
    scored ``-inf``. Returns (item positions int64, scores float32), each ``[B, min(k, N)]``,
    sorted by score descending then position ascending; an excluded pair only appears (with
    ``-inf``) when a user has fewer than ``k`` other items.

    >>> pos, val = block_top_k(np.ones((1, 1), np.float32), np.array([[1.], [3.], [2.]], np.float32), 2, 2)
    >>> pos.tolist(), val.tolist()
    ([[1, 2]], [[3.0, 2.0]])
    """
    n_users, n_items = users.shape[0], items.shape[0]
    kk = min(k, n_items)
    user_t = torch.from_numpy(np.ascontiguousarray(users, dtype=np.float32))
    best_val = torch.empty((n_users, 0), dtype=torch.float32)
    best_pos = torch.empty((n_users, 0), dtype=torch.int64)
    rows, cols = exclude if exclude is not None else (np.empty(0, np.int64), np.empty(0, np.int64))
    for start in range(0, n_items, block_size):
        # a copy: the matrix may be a read-only Arrow buffer, which torch warns about
        block = torch.from_numpy(np.array(items[start : start + block_size], dtype=np.float32))
        scores = user_t @ block.T
        inside = (cols >= start) & (cols < start + block.shape[0])
        if inside.any():
            scores[torch.from_numpy(rows[inside]), torch.from_numpy(cols[inside] - start)] = -torch.inf
        positions = torch.arange(start, start + block.shape[0], dtype=torch.int64).expand(n_users, -1)
        cand_val = torch.cat([best_val, scores], dim=1)
        cand_pos = torch.cat([best_pos, positions], dim=1)
        best_val, keep = torch.topk(cand_val, min(kk, cand_val.shape[1]), dim=1)
        best_pos = torch.gather(cand_pos, 1, keep)
    pos, val = best_pos.numpy(), best_val.numpy()
    order = np.lexsort((pos, -val), axis=1)
    return np.take_along_axis(pos, order, axis=1), np.take_along_axis(val, order, axis=1)


def list_rows(user_ids: pa.Array, item_ids: np.ndarray, pos: np.ndarray, val: np.ndarray) -> pa.RecordBatch:
    """The :data:`TOP_K_SCHEMA` rows of a block's lists, excluded (``-inf``) entries dropped."""
    width = pos.shape[1]
    user_rows = np.repeat(np.arange(pos.shape[0]), width)
    ranks = np.tile(np.arange(1, width + 1, dtype=np.int32), pos.shape[0])
    keep = np.isfinite(val.ravel())
    return pa.RecordBatch.from_arrays(
        [
            user_ids.take(pa.array(user_rows[keep])),
            pa.array(item_ids[pos.ravel()[keep]], type=pa.string()),
            pa.array(val.ravel()[keep].astype(np.float64)),
            pa.array(ranks[keep]),
        ],
        schema=_TOP_K_ARROW,
    )


def excluded_pairs(heard: pa.Array, lookup: Callable[[np.ndarray], np.ndarray]) -> Excluded:
    """(rows, positions) of a block's heard lists (``list<...>``, null = none); ``lookup`` maps
    the listed ids to item positions (-1 for ids outside the matrix, dropped)."""
    flat = heard.flatten().to_numpy(zero_copy_only=False)  # the non-null lists' values
    lengths = np.asarray(heard.value_lengths().fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    rows = np.repeat(np.arange(len(heard)), lengths)
    cols = lookup(flat) if len(flat) else np.empty(0, np.int64)
    keep = cols >= 0
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64)


def _blocks(batches: Iterable[pa.RecordBatch], block_size: int) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        for start in range(0, batch.num_rows, block_size):
            yield batch.slice(start, block_size)


# ---- factor models ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemVectors:
    """An item matrix read from Parquet: ``ids`` (sorted ascending) and ``matrix`` ``[N, d]``."""

    ids: np.ndarray
    matrix: np.ndarray

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """The rows of ``ids`` in the matrix (-1 where absent)."""
        at = np.searchsorted(self.ids, ids)
        found = (at < len(self.ids)) & (self.ids[np.minimum(at, len(self.ids) - 1)] == ids)
        return np.where(found, at, -1)


def write_item_vectors(df: DataFrame, path: str) -> None:
    """Write ``[song_id, vector array<float>]`` as Parquet under ``path`` for :func:`factor_top_k`."""
    out = df.select(F.col("song_id").cast("string"), F.col("vector").cast("array<float>")).dropna()
    out.write.mode("overwrite").parquet(path)


def read_item_vectors(path: str) -> ItemVectors:
    """The matrix written by :func:`write_item_vectors`, sorted by id (cached per worker)."""

    def load() -> ItemVectors:
        table = pq.read_table(path).sort_by("song_id")
        ids = np.asarray(table.column("song_id").to_pylist(), dtype=object)
        vectors = table.column("vector").combine_chunks()
        dim = len(vectors[0]) if len(vectors) else 0
        matrix = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dim)
        return ItemVectors(ids, matrix)

    return runtime.MODELS.get(("item_vectors", path), load)


def factor_top_k(users: DataFrame, items_path: str, k: int, block_size: int) -> DataFrame:
    """Each user's ``k`` best items of the matrix at ``items_path`` (:func:`write_item_vectors`).

    ``users``: ``[msno, vector array<float>, heard array<string>]`` (``heard`` null = nothing
    excluded). Returns :data:`TOP_K_SCHEMA`.
    """

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        items = read_item_vectors(items_path)
        torch.set_num_threads(1)  # one task per core
        for block in _blocks(batches, block_size):
            flat = block.column("vector").flatten().to_numpy(zero_copy_only=False)
            users_np = flat.astype(np.float32).reshape(-1, items.matrix.shape[1])
            exclude = excluded_pairs(block.column("heard"), items.positions)
            pos, val = block_top_k(users_np, items.matrix, k, block_size, exclude)
            yield list_rows(block.column("msno"), items.ids, pos, val)

    return users.select("msno", "vector", "heard").mapInArrow(run, TOP_K_SCHEMA)


def factor_lists(
    users: DataFrame, items: DataFrame, heard: DataFrame | None, path: str, k: int, block_size: int
) -> DataFrame:
    """:func:`factor_top_k` of a factor model's ``users`` ``[msno, vector]`` against its ``items``
    ``[song_id, vector]`` (written to ``path`` first), leaving out ``heard`` ``[msno, song_id]``
    (None: nothing)."""
    write_item_vectors(items, path)
    if heard is None:
        with_heard = users.withColumn("heard", F.lit(None).cast("array<string>"))
    else:
        lists = heard.groupBy("msno").agg(F.collect_list("song_id").alias("heard"))
        with_heard = users.join(lists, "msno", "left")
    return factor_top_k(with_heard, path, k, block_size)


# ---- the retriever ------------------------------------------------------------------------------
def user_vectors(model: RetrieverModel, block: pa.RecordBatch) -> np.ndarray:
    """The retriever's user vectors of a block's token columns (:data:`TOKENS`)."""
    width = max(1, min(model.vocab.max_len, int(block.column("items").value_lengths().to_numpy().max())))
    tokens = token_matrix(block, width).astype(np.int64)
    return model.user_vectors(*[tokens[:, i] for i in range(len(TOKENS))])


def retriever_top_k(
    histories: DataFrame, models_root: str, version: str, k: int, block_size: int
) -> DataFrame:
    """Each user's ``k`` best songs by the retriever ``version`` of ``models_root``.

    ``histories``: ``[msno, items, artists, genres, languages, sources array<int>, heard
    array<int>]`` (token arrays in time order, at least one event; ``heard`` item indices left
    out, null = none). Returns :data:`TOP_K_SCHEMA`; the padding item never enters a list.
    """

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        model = load_retriever(models_root, version)
        matrix = model.item_matrix()[1:]  # row 0 is the padding
        song_ids = model.items["song_id"].to_numpy()[1:]
        torch.set_num_threads(1)
        for block in _blocks(batches, block_size):
            users_np = user_vectors(model, block)
            exclude = excluded_pairs(block.column("heard"), lambda idx: np.asarray(idx, np.int64) - 1)
            pos, val = block_top_k(users_np, matrix, k, block_size, exclude)
            yield list_rows(block.column("msno"), song_ids, pos, val)

    return histories.select("msno", *TOKENS, "heard").mapInArrow(run, TOP_K_SCHEMA)


def heard_pairs(history: DataFrame, users: DataFrame) -> DataFrame:
    """``[msno, song_id]``: the distinct songs ``users`` ``[msno]`` played in ``history``."""
    return history.join(users, "msno", "left_semi").select("msno", "song_id").distinct()


def retriever_lists(
    spark: SparkSession,
    models_root: str,
    folder: Path,
    history: DataFrame,
    users: DataFrame,
    heard: DataFrame | None,
    k: int,
    block_size: int,
) -> DataFrame:
    """:data:`TOP_K_SCHEMA`: the top ``k`` songs of the retriever version at ``folder``
    (:func:`resolve_retriever`) for ``users`` ``[msno]``, from their last ``max_len`` events of
    ``history`` (schemas.EVENTS rows before a cutoff), the songs of ``heard`` ``[msno, song_id]``
    left out (None: none)."""
    rows = history.join(users, "msno", "left_semi")
    inputs = retriever_inputs(spark, folder, rows, heard)
    return retriever_top_k(inputs, models_root, folder.name, k, block_size)


def resolve_retriever(models_root: str, version: str, stage: int | None = None) -> Path:
    """The registry folder of the retriever ``version`` (``latest`` resolved now, on the driver,
    so that every task loads the same version); with ``stage`` (1: pretrained, 2: fine-tuned on
    the ranker) ``latest`` is the newest version of that stage (a version without a ``stage``
    field predates stage 2: stage 1)."""
    if version != "latest" or stage is None:
        return registry.resolve(models_root, runtime.RETRIEVER, version).absolute()
    found = []
    for value in (stage, None) if stage == 1 else (stage,):
        try:
            found.append(registry.resolve(models_root, runtime.RETRIEVER, "latest", {"stage": value}))
        except InputError:
            continue
    if not found:
        raise InputError(f"no trained retriever of stage {stage} under {models_root} (train it first)")
    return max(found, key=lambda folder: folder.name).absolute()


def retriever_inputs(
    spark: SparkSession, folder: Path, rows: DataFrame, heard: DataFrame | None = None
) -> DataFrame:
    """:func:`retriever_top_k`'s input from a log: each user's last ``max_len`` events of ``rows``
    (schemas.EVENTS columns) encoded with the saved version's item table and source tokens, and
    ``heard`` ``[msno, song_id]`` as item indices (null where ``heard`` is None or the user has
    none). ``folder``: :func:`resolve_retriever`."""
    vocab = Vocab.from_dict(json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8")))
    items = spark.read.parquet(str(folder / ITEMS_FOLDER))
    tokens = [(i, token) for i, token in enumerate(vocab.source_tokens, start=1)]
    sources = spark.createDataFrame(tokens, "source int, source_token string")  # a few hundred contexts
    histories = last_events(encode_events(rows, items, sources), vocab.max_len, key="msno")
    if heard is None:
        return histories.withColumn("heard", F.lit(None).cast("array<int>"))
    indices = heard.join(items.select("song_id", "item_index"), "song_id")
    lists = indices.groupBy("msno").agg(F.collect_list("item_index").cast("array<int>").alias("heard"))
    return histories.join(lists, "msno", "left")
