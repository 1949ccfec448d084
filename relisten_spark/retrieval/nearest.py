"""Exact top-K of dot products, every user against every item, inside Spark tasks.

The core, :func:`block_top_k`, takes arrays: a user block ``[B, d]`` against an item matrix
``[N, d]``, ``block_size`` items at a time (a torch matrix product per step) with a running top-k,
so a step never holds more than ``B x block_size`` scores. It scans the items by norm descending
(:class:`ItemScan`) and stops once no remaining item can reach any user's list. Excluded (user,
item) pairs (the songs a user already heard, where the protocol or surface asks) score ``-inf``
and never enter a list.

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
from torch.nn import functional as nnf

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


_SLACK = 1e-4  # relative margin of the norm bound over float32 rounding of the products


@dataclass(frozen=True)
class ItemScan:
    """An item matrix in the order :func:`block_top_k` scans it: rows by norm descending (position
    ascending among equal norms), so that the scan can stop once ``|u| |v|``, which bounds every
    remaining score ``u . v``, is below each user's ``k``-th best."""

    matrix: torch.Tensor  # float32 [N, d], scan order
    positions: np.ndarray  # int64 [N]: each scan row's position in the given matrix
    rows: np.ndarray  # int64 [N]: each position's scan row
    norms: np.ndarray  # float64 [N]: the scan rows' norms, descending


def item_scan(items: np.ndarray) -> ItemScan:
    """The :class:`ItemScan` of ``items`` ``[N, d]`` (build it once per matrix for many blocks)."""
    matrix = np.asarray(items, dtype=np.float32)
    norms = np.linalg.norm(matrix.astype(np.float64), axis=1)
    positions = np.argsort(-norms, kind="stable")
    rows = np.empty_like(positions)
    rows[positions] = np.arange(len(positions))
    # a fancy-indexed copy: writable (a read-only Arrow buffer makes torch warn) and contiguous
    return ItemScan(torch.from_numpy(matrix[positions]), positions, rows, norms[positions])


def block_top_k(
    users: np.ndarray,
    items: np.ndarray | ItemScan,
    k: int,
    block_size: int,
    exclude: Excluded | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's ``k`` best items by ``users @ items.T``, ``block_size`` items at a time.

    ``users`` ``[B, d]``, ``items`` ``[N, d]`` (float32, or its :func:`item_scan`); ``exclude`` the
    (row, position) pairs left out. Returns (item positions int64, scores float32), each ``[B,
    min(k, N)]``, sorted by score descending then position ascending; a user with fewer than
    ``k`` eligible items ends with ``-inf`` entries at position ``-1``. Of items tied at the
    ``k``-th score, those scanned first make the cut: the larger norm, then the lower position
    (for one-dimensional scores such as plays, exactly the lower positions).

    The items are scanned by norm descending. Once a user's list is full, only the block's scores
    above its current ``k``-th best can enter it: those few are gathered and merged (no top-k
    selection over the whole block); and once no remaining item's norm bound reaches any user's
    ``k``-th best, the scan stops (the retriever trained at full scale: about 1 % of the items
    at most). Exact: a stopped scan leaves out only items that score below every list's end.

    >>> pos, val = block_top_k(np.ones((1, 1), np.float32), np.array([[1.], [3.], [2.]], np.float32), 2, 2)
    >>> pos.tolist(), val.tolist()
    ([[1, 2]], [[3.0, 2.0]])
    """
    scan = items if isinstance(items, ItemScan) else item_scan(items)
    n_users, n_items = users.shape[0], scan.positions.shape[0]
    kk = min(k, n_items)
    if kk <= 0:
        return np.empty((n_users, 0), np.int64), np.empty((n_users, 0), np.float32)
    user_np = np.ascontiguousarray(users, dtype=np.float32)
    user_t = torch.from_numpy(user_np)
    reach = np.linalg.norm(user_np.astype(np.float64), axis=1) * (1 + _SLACK)
    best_val = torch.empty((n_users, 0), dtype=torch.float32)
    best_pos = torch.empty((n_users, 0), dtype=torch.int64)
    rows, cols = exclude if exclude is not None else (np.empty(0, np.int64), np.empty(0, np.int64))
    cols = scan.rows[cols]
    by_col = np.argsort(cols, kind="stable")
    rows, cols = rows[by_col], cols[by_col]
    for start in range(0, n_items, block_size):
        threshold = best_val[:, -1] if best_val.shape[1] == kk else None  # the lists are kept sorted
        if threshold is not None and bool((reach * scan.norms[start] < threshold.numpy()).all()):
            break  # no item from here on can enter any list
        block = scan.matrix[start : start + block_size]
        scores = user_t @ block.T
        lo, hi = np.searchsorted(cols, [start, start + block.shape[0]])
        if hi > lo:
            scores[torch.from_numpy(rows[lo:hi]), torch.from_numpy(cols[lo:hi] - start)] = -torch.inf
        if threshold is None:  # filling the lists
            new_val, new_pos = scores, torch.arange(start, start + block.shape[0]).expand(n_users, -1)
        else:
            contenders = _above(scores, threshold, start)
            if contenders is None:
                continue
            new_val, new_pos = contenders
        # stable: among equal scores the earlier scanned item stays ahead (the list, then the block)
        cand_val, keep = torch.sort(
            torch.cat([best_val, new_val], dim=1), dim=1, descending=True, stable=True
        )
        best_val, keep = cand_val[:, :kk], keep[:, :kk]
        best_pos = torch.gather(torch.cat([best_pos, new_pos], dim=1), 1, keep)
    val = best_val.numpy()
    # -inf entries (padding at -1, or excluded pairs of a short list) carry no item
    pos = np.where(np.isneginf(val), -1, scan.positions[best_pos.numpy().clip(0)])
    order = np.lexsort((pos, -val), axis=1)
    return np.take_along_axis(pos, order, axis=1), np.take_along_axis(val, order, axis=1)


_GROUP = 64  # scores per group of the contender search


def _above(
    scores: torch.Tensor, threshold: torch.Tensor, start: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(values, scan positions) ``[B, w]``: each row's scores above its ``threshold``, side by
    side (the block's first column is scan position ``start``), rows padded with ``-inf`` at
    position -1; None when no row has one.

    The scores are cut into groups of :data:`_GROUP`; a group's maximum (a cheap vectorised
    reduction) tells whether it holds a contender, and only those groups are searched.
    """
    n_rows, width = scores.shape
    if width % _GROUP:
        scores = nnf.pad(scores, (0, -width % _GROUP), value=-torch.inf)
    groups = scores.view(n_rows, -1, _GROUP)
    hit_rows, hit_groups = (groups.amax(dim=2) > threshold[:, None]).nonzero(as_tuple=True)
    if hit_rows.shape[0] == 0:
        return None
    found = groups[hit_rows, hit_groups]
    hit, offset = (found > threshold[hit_rows, None]).nonzero(as_tuple=True)
    rows = hit_rows[hit]  # ascending, as nonzero lists rows in order
    counts = torch.bincount(rows, minlength=n_rows)
    slots = torch.arange(rows.shape[0]) - (torch.cumsum(counts, 0) - counts)[rows]
    most = int(counts.max())
    values = torch.full((n_rows, most), -torch.inf)
    positions = torch.full((n_rows, most), -1, dtype=torch.int64)
    values[rows, slots] = found[hit, offset]
    positions[rows, slots] = start + hit_groups[hit] * _GROUP + offset
    return values, positions


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
    """An item matrix read from Parquet: ``ids`` (sorted ascending) and the matrix's
    :class:`ItemScan` (positions = rows of ``ids``)."""

    ids: np.ndarray
    scan: ItemScan

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
        return ItemVectors(ids, item_scan(matrix))

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
            users_np = flat.astype(np.float32).reshape(-1, items.scan.matrix.shape[1])
            exclude = excluded_pairs(block.column("heard"), items.positions)
            pos, val = block_top_k(users_np, items.scan, k, block_size, exclude)
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
_USER_BATCH = 256  # users per transformer pass in candidate generation


def user_vectors(model: RetrieverModel, block: pa.RecordBatch) -> np.ndarray:
    """The retriever's user vectors ``[B, width]`` of a block's token columns (:data:`TOKENS`), users
    of similar history length batched together so that a pass pads little."""
    lengths = np.minimum(
        block.column("items").value_lengths().to_numpy(zero_copy_only=False), model.vocab.max_len
    )
    order = np.argsort(lengths, kind="stable")
    out = np.empty((block.num_rows, model.hyper.width), dtype=np.float32)
    for start in range(0, len(order), _USER_BATCH):
        rows = order[start : start + _USER_BATCH]
        width = max(1, int(lengths[rows].max()))
        tokens = token_matrix(block.take(pa.array(rows)), width).astype(np.int64)
        out[rows] = model.user_vectors(*[tokens[:, i] for i in range(len(TOKENS))])
    return out


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
        scan = runtime.MODELS.get(("item_scan", model.folder), lambda: item_scan(model.item_matrix()[1:]))
        song_ids = model.items["song_id"].to_numpy()[1:]
        torch.set_num_threads(1)
        for block in _blocks(batches, block_size):
            users_np = user_vectors(model, block)
            exclude = excluded_pairs(block.column("heard"), lambda idx: np.asarray(idx, np.int64) - 1)
            pos, val = block_top_k(users_np, scan, k, block_size, exclude)
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
    exclude_heard: bool,
    k: int,
    block_size: int,
) -> DataFrame:
    """:data:`TOP_K_SCHEMA`: the top ``k`` songs of the retriever version at ``folder``
    (:func:`resolve_retriever`) for ``users`` ``[msno]``, from their last ``max_len`` events of
    ``history`` (schemas.EVENTS rows before a cutoff); with ``exclude_heard`` the songs they
    played in ``history`` left out."""
    rows = history.join(users, "msno", "left_semi")
    inputs = retriever_inputs(spark, folder, rows, exclude_heard)
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
    spark: SparkSession, folder: Path, rows: DataFrame, exclude_heard: bool = False
) -> DataFrame:
    """:func:`retriever_top_k`'s input from a log: each user's last ``max_len`` events of ``rows``
    (schemas.EVENTS columns) encoded with the saved version's item table and source tokens, and
    ``heard``: with ``exclude_heard`` the item indices of all the user's ``rows`` (from the same
    grouping as the history), else null. ``folder``: :func:`resolve_retriever`."""
    vocab = Vocab.from_dict(json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8")))
    items = spark.read.parquet(str(folder / ITEMS_FOLDER))
    tokens = [(i, token) for i, token in enumerate(vocab.source_tokens, start=1)]
    sources = spark.createDataFrame(tokens, "source int, source_token string")  # a few hundred contexts
    coded = encode_events(rows, items, sources)
    histories = last_events(coded, vocab.max_len, key="msno", heard=exclude_heard)
    return histories if exclude_heard else histories.withColumn("heard", F.lit(None).cast("array<int>"))
