"""The truncated SVD of a sparse matrix (FEATURES.md step 4) as a distributed randomized SVD on
Spark; :mod:`~relisten_spark.features.embeddings` fits the thesis's factor tables with it.

The thesis runs scipy ``svds`` (k=48) on the binary user x song matrix and (k=16) on the user x
artist matrix with entries 0.3*ln(1+c)+1. Here the same factorisation is computed with the
randomized subspace iteration of Halko, Martinsson & Tropp (2011), Alg. 4.4 / 5.1, from Spark
operations only:

* the sparse matrix A (m x n) is a DataFrame of entries ``(row, col, value)``, cached once,
  hash-partitioned into buckets of columns (every column lives in exactly one bucket), with the
  larger dimension as columns;
* tall-thin dense matrices (m x l and n x l, l = k + oversample) are DataFrames
  ``(id, vec array<double>)``; only l x l matrices (Gram matrices, the changes of basis that
  orthonormalise) ever reach the driver;
* Omega (n x l) is never stored: entry (c, j) is a counter-based Gaussian of (seed, c, j);
* one power iteration is one Spark job: a cogroup of the buckets with the current basis Q
  (m x l, copied to every bucket) in which each bucket computes its block of Z = A^T Q
  (complete, its columns are local), its part of Z^T Z and of A Z, then a grouped step that
  sums the parts of A Z and the Gram matrix of the sum;
* orthonormalisation is by Gram matrices with a rank-revealing eigen-solve (W^T G W = I): the
  basis is a cached frame Y plus a small change of basis M (Q = Y M), re-whitened exactly at
  the end with Q^T Q (every bucket holds all of Q); rank-deficient inputs give fewer directions;
* finally B = Q^T A is never formed: its Gram B B^T = Z^T Z (l x l) gives Ub and s, then
  U = Q Ub and V = Z Ub / s, both row-local maps.

Accuracy: the singular values and the subspace converge like (s_{l+1}/s_k)^(2q+1) with q power
iterations, so flat spectra (random sparse matrices) need more oversampling or iterations than
the defaults (l = k + 10, q = 4) to match ARPACK closely.

Factors are unit-norm, NOT scaled by s, ordered by descending singular value. Directions beyond
the rank of the input (or with s below 1e-6 * s_0) get s = 0 and zero vectors.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy import sparse
from scipy.sparse.linalg import svds
from scipy.special import ndtri

log = logging.getLogger(__name__)

_VECTORS = "id int, vec array<double>"
_PARTS = "kind int, id int, vec array<double>"
# Kinds of the rows of a "parts" frame: vectors of a tall matrix, and rows of small Gram matrices
# (of Z, of the summed rows, of the basis) and the column sums of the summed rows (id 0).
_ROWS, _GRAM, _ROWS_GRAM, _BASIS_GRAM, _ROWS_SUM = 0, 1, 2, 3, 4
_EIGEN_TOL = 1e-12  # relative eigenvalue floor of a Gram matrix (singular value ratio 1e-6)
_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


# ---- numpy / arrow helpers (run inside the Python workers) -----------------------------------
def gaussian(ids: np.ndarray, width: int, seed: int) -> np.ndarray:
    """Row ``ids`` of a standard normal matrix of ``width`` columns, the same for any batch:
    entry (i, j) depends only on (seed, i, j) (splitmix64 -> uniform -> inverse normal CDF).

    >>> a = gaussian(np.array([3, 7]), 4, seed=1)
    >>> bool(np.array_equal(a[1], gaussian(np.array([7]), 4, seed=1)[0]))
    True
    """
    offset = np.uint64((seed * _GOLDEN + 0x632BE59BD9B4E019) & _MASK64)
    counter = ids.astype(np.uint64)[:, None] * np.uint64(max(width, 1)) + np.arange(width, dtype=np.uint64)
    z: np.ndarray = counter * np.uint64(_GOLDEN) + offset
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    uniform = ((z >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)
    return ndtri(uniform)


def _matrix(column: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    """A ``list<double>`` Arrow column of equal-length lists as an (n, width) array."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    flat = array.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(array), width)


def _list_column(mat: np.ndarray) -> pa.Array:
    n, width = mat.shape
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(width)
    return pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(np.ascontiguousarray(mat).ravel(), pa.float64())
    )


def _vectors(ids: np.ndarray, mat: np.ndarray) -> pa.Table:
    return pa.table({"id": pa.array(ids.astype(np.int32)), "vec": _list_column(mat)})


def _parts(kind: int, ids: np.ndarray, mat: np.ndarray) -> pa.Table:
    table = _vectors(ids, mat)
    return table.add_column(0, "kind", pa.array(np.full(len(ids), kind, dtype=np.int32)))


def whiten(gram: np.ndarray) -> np.ndarray:
    """A change of basis W (l x r) with Wᵀ G W = I for the symmetric PSD ``gram`` G, dropping the
    directions with eigenvalue below 1e-12 of the largest (r is the numerical rank).

    >>> g = np.array([[4.0, 0.0], [0.0, 0.0]])
    >>> whiten(g).round(6).tolist()
    [[0.5], [0.0]]
    """
    if gram.size == 0:
        return np.zeros((gram.shape[0], 0))
    values, vectors = np.linalg.eigh((gram + gram.T) / 2.0)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    keep = values > max(values[0], 0.0) * _EIGEN_TOL
    if values[0] <= 0.0:
        keep[:] = False
    return vectors[:, keep] / np.sqrt(values[keep])


# ---- the distributed matrix ----------------------------------------------------------------
@dataclass(frozen=True)
class TruncatedSvd:
    """A ≈ U diag(s) Vᵀ. ``rows``: ``[id int, vec array<double>]`` (U, one row per matrix row
    with entries); ``cols``: the same for V; ``values``: s, descending, length k. The frames
    are computed from cached intermediates: call :meth:`unpersist` once they are used."""

    rows: DataFrame
    cols: DataFrame
    values: tuple[float, ...]
    cached: tuple[DataFrame, ...] = ()

    def unpersist(self) -> None:
        for frame in self.cached:
            frame.unpersist()


class _BucketedMatrix:
    """The entries of A, cached and partitioned by column bucket, and its products. Every
    column lies in one bucket, so a bucket's block of Aᵀ X is complete without a reduction."""

    def __init__(self, entries: DataFrame, buckets: int) -> None:
        self.buckets = buckets
        self.spark = entries.sparkSession
        bucket = F.pmod(F.hash("col"), F.lit(buckets)).cast("int").alias("_b")
        self.entries = (
            entries.select("row", "col", "value", bucket)
            .repartition(buckets, "_b")
            .sortWithinPartitions("_b")
            .persist(StorageLevel.MEMORY_AND_DISK)
        )

    def _cogroup(self, basis: DataFrame, fn: Callable[..., pa.Table], schema: str) -> DataFrame:
        """``fn(key, block of A, every row of basis)`` per bucket: the basis is copied to each."""
        ids = self.spark.range(self.buckets).select(F.col("id").cast("int").alias("_b"))
        copies = basis.crossJoin(ids).groupBy("_b")
        return self.entries.groupBy("_b").cogroup(copies).applyInArrow(fn, schema)

    def sketch(self, width: int, seed: int) -> DataFrame:
        """Partial sums of A Omega (Omega: n x width Gaussian): ``[kind, id, vec]``."""

        def fn(block: pa.Table) -> pa.Table:
            rows, cols, values = _coo(block)
            col_ids, col_pos = np.unique(cols, return_inverse=True)
            row_ids, row_pos = np.unique(rows, return_inverse=True)
            a = sparse.csr_matrix((values, (row_pos, col_pos)), shape=(len(row_ids), len(col_ids)))
            return _parts(_ROWS, row_ids, a @ gaussian(col_ids, width, seed))

        return self.entries.groupBy("_b").applyInArrow(fn, _PARTS)

    def power_step(self, basis: DataFrame, width: int, change: np.ndarray) -> DataFrame:
        """With Q = basis · change and Z = Aᵀ Q: partial sums of A Z (rows) and of Zᵀ Z."""

        def fn(key: tuple, block: pa.Table, q_rows: pa.Table) -> pa.Table:
            a, q, row_ids, _ = _local(block, q_rows, width, change)
            z = a.T @ q
            present = np.flatnonzero(np.diff(a.indptr))
            rows = _parts(_ROWS, row_ids[present], (a @ z)[present])
            return pa.concat_tables([rows, _parts(_GRAM, np.arange(z.shape[1]), z.T @ z)])

        return self._cogroup(basis, fn, _PARTS)

    def transpose_times(self, basis: DataFrame, width: int, change: np.ndarray) -> DataFrame:
        """Z = Aᵀ Q for Q = basis · change: rows ``(kind=_ROWS, column id, vec)``, complete, plus
        the bucket's part of Zᵀ Z (``_GRAM``) and, once, Qᵀ Q (``_BASIS_GRAM``)."""

        def fn(key: tuple, block: pa.Table, q_rows: pa.Table) -> pa.Table:
            a, q, _, col_ids = _local(block, q_rows, width, change)
            z = a.T @ q
            tables = [_parts(_ROWS, col_ids, z), _parts(_GRAM, np.arange(z.shape[1]), z.T @ z)]
            if key[0].as_py() == 0:
                tables.append(_parts(_BASIS_GRAM, np.arange(q.shape[1]), q.T @ q))
            return pa.concat_tables(tables)

        return self._cogroup(basis, fn, _PARTS)

    def sum_parts(self, parts: DataFrame, width: int) -> DataFrame:
        """Sum the partial vectors of equal (kind, id): ``[kind, id, vec]``, plus per group the
        Gram matrix of its summed ``_ROWS`` vectors as ``_ROWS_GRAM`` rows (summed on the driver)."""

        def fn(group: pa.Table) -> pa.Table:
            keys = group.column("kind").to_numpy().astype(np.int64) << 32
            keys |= group.column("id").to_numpy().astype(np.int64) & 0xFFFFFFFF
            order = np.argsort(keys, kind="stable")
            keys, mat = keys[order], _matrix(group.column("vec"), width)[order]
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            first, sums = keys[starts], np.add.reduceat(mat, starts, axis=0)
            kinds, ids = (first >> 32).astype(np.int32), (first & 0xFFFFFFFF).astype(np.int32)
            table = _vectors(ids, sums).add_column(0, "kind", pa.array(kinds))
            rows = sums[kinds == _ROWS]
            gram = _parts(_ROWS_GRAM, np.arange(width), rows.T @ rows)
            return pa.concat_tables([table, gram, _parts(_ROWS_SUM, np.zeros(1), rows.sum(axis=0)[None, :])])

        bucket = F.pmod(F.hash("kind", "id"), F.lit(self.buckets))
        return parts.groupBy(bucket.alias("_g")).applyInArrow(fn, _PARTS)


def _coo(block: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        block.column("row").to_numpy(),
        block.column("col").to_numpy(),
        block.column("value").to_numpy().astype(np.float64),
    )


def _local(
    block: pa.Table, q_rows: pa.Table, width: int, change: np.ndarray
) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray, np.ndarray]:
    """The bucket's block of A (rows in the order of the sorted basis ids), Q = basis · change,
    the sorted row ids and the bucket's sorted column ids."""
    rows, cols, values = _coo(block)
    q_ids = q_rows.column("id").to_numpy()
    order = np.argsort(q_ids)
    row_ids = q_ids[order]
    q = _matrix(q_rows.column("vec"), width)[order] @ change
    col_ids, col_pos = np.unique(cols, return_inverse=True)
    shape = (len(row_ids), len(col_ids))
    a = sparse.csr_matrix((values, (np.searchsorted(row_ids, rows), col_pos)), shape=shape)
    return a, q, row_ids, col_ids


def _small(parts: DataFrame, width: int) -> dict[int, np.ndarray]:
    """The (width x width) matrices of ``parts`` (every kind but ``_ROWS``), summed by kind."""
    out: dict[int, np.ndarray] = {}
    for row in parts.where(F.col("kind") != _ROWS).collect():
        out.setdefault(row["kind"], np.zeros((width, width)))[row["id"]] += np.asarray(row["vec"])
    return out


def _times(frame: DataFrame, width: int, change: np.ndarray) -> DataFrame:
    """Row-local product ``frame · change`` of the ``_ROWS`` vectors of a parts frame."""

    def fn(batches: Iterable[pa.RecordBatch]) -> Iterable[pa.RecordBatch]:
        for batch in batches:
            mat = _matrix(batch.column("vec"), width) @ change
            yield from _vectors(batch.column("id").to_numpy(), mat).to_batches()

    return frame.where(F.col("kind") == _ROWS).select("id", "vec").mapInArrow(fn, _VECTORS)


def _svd_on_driver(entries: DataFrame, k: int, seed: int, transposed: bool) -> TruncatedSvd:
    """The same factorisation as the distributed path for a small matrix: its entries (at most
    ``local_max_nnz`` rows) are collected and factorised with scipy ``svds`` (dense LAPACK when
    k reaches the smaller dimension, where ARPACK cannot run). ``entries`` is already oriented
    with the smaller side as rows (``transposed`` says whether the caller's rows are columns)."""
    table = entries.select("row", "col", "value").toArrow()
    row_ids, row_pos = np.unique(table.column("row").to_numpy(), return_inverse=True)
    col_ids, col_pos = np.unique(table.column("col").to_numpy(), return_inverse=True)
    values = table.column("value").to_numpy().astype(np.float64)
    a = sparse.csr_matrix((values, (row_pos, col_pos)), shape=(len(row_ids), len(col_ids)))
    small = min(a.shape)
    if k < small:
        v0 = np.random.default_rng(seed).standard_normal(small)
        u, s, vt = svds(a, k=k, v0=v0)
    else:
        u, s, vt = np.linalg.svd(a.toarray(), full_matrices=False)
    order = np.argsort(s)[::-1][:k]
    u, s, v = u[:, order], s[order], vt[order].T
    live = s > (s[0] if len(s) else 0.0) * math.sqrt(_EIGEN_TOL)
    signs = np.where(u.sum(axis=0) < 0, -1.0, 1.0)
    pad = ((0, 0), (0, k - len(s)))
    u = np.pad(np.where(live, u * signs, 0.0), pad)
    v = np.pad(np.where(live, v * signs, 0.0), pad)
    spark = entries.sparkSession
    u_frame = spark.createDataFrame(_vectors(row_ids, u).to_pandas(), _VECTORS)
    v_frame = spark.createDataFrame(_vectors(col_ids, v).to_pandas(), _VECTORS)
    singular = tuple(float(x) for x in np.pad(np.where(live, s, 0.0), (0, k - len(s))))
    if transposed:
        u_frame, v_frame = v_frame, u_frame
    return TruncatedSvd(rows=u_frame, cols=v_frame, values=singular)


def _row_vectors(parts: DataFrame) -> DataFrame:
    return parts.where(F.col("kind") == _ROWS).select("id", "vec")


@dataclass(frozen=True)
class _Basis:
    """The current basis of the subspace iteration: Q = Y · ``change`` with Y the ``_ROWS`` vectors
    of ``parts`` (``width`` columns) and ``y_sum`` the column sums of Y."""

    parts: DataFrame
    width: int
    change: np.ndarray
    y_sum: np.ndarray


def session_buckets(spark: SparkSession) -> int:
    """The buckets a factorisation splits its work into: ``spark.sql.shuffle.partitions``
    (8 when unset)."""
    return int(spark.conf.get("spark.sql.shuffle.partitions") or "8")


def randomized_svd(
    entries: DataFrame,
    k: int,
    oversample: int,
    power_iters: int,
    seed: int,
    buckets: int,
    name: str = "matrix",
    local_max_nnz: int = 0,
) -> TruncatedSvd:
    """Top-``k`` SVD of the sparse matrix given by ``entries`` ``[row int, col int, value double]``
    (one entry per (row, col); absent = 0), by randomized subspace iteration with
    ``k + oversample`` columns and ``power_iters`` power iterations, in ``buckets`` buckets.
    A matrix with at most ``local_max_nnz`` entries is instead collected and factorised on the
    driver with scipy ``svds`` (ARPACK, the thesis's solver): Spark's per-job overhead dominates
    small inputs. Both paths give the same contract, order and sign convention (the column
    sums of the factor of the smaller side are non-negative).

    Spark jobs: one for the shape, one for the sketch, one per power iteration, one for Z.
    The basis Q is kept as a cached frame Y and a small change of basis M (Q = Y M): whitening
    by Y's Gram matrix (computed in the same job as Y) keeps it orthonormal up to rounding, and
    the last step re-whitens exactly with Qᵀ Q, which every bucket holds a full copy of.
    """
    started = time.perf_counter()
    raw = entries.select("row", "col", "value").persist(StorageLevel.MEMORY_AND_DISK)
    stats = raw.agg(
        F.count(F.lit(1)).alias("nnz"), F.countDistinct("row").alias("m"), F.countDistinct("col").alias("n")
    ).collect()[0]
    nnz, m, n = int(stats["nnz"]), int(stats["m"]), int(stats["n"])
    transposed = m > n
    oriented = raw
    if transposed:
        oriented = raw.select(F.col("col").alias("row"), F.col("row").alias("col"), "value")
    width = min(k + oversample, m, n)
    log.info(
        "svd %s: %d x %d, %d entries, k=%d, l=%d, %d power iterations, %d buckets%s",
        name,
        min(m, n),
        max(m, n),
        nnz,
        k,
        width,
        power_iters,
        buckets,
        ", transposed" if transposed else "",
    )
    if width == 0:
        raw.unpersist()
        none = raw.sparkSession.createDataFrame([], _VECTORS)
        return TruncatedSvd(rows=none, cols=none, values=(0.0,) * k)
    if nnz <= local_max_nnz:
        result = _svd_on_driver(oriented, k, seed, transposed)
        raw.unpersist()
        log.info("svd %s: on the driver (scipy svds) in %.1f s", name, time.perf_counter() - started)
        return result
    matrix = _BucketedMatrix(oriented, buckets)
    basis = _sketch(matrix, width, seed)
    raw.unpersist()
    log.info("svd %s: sketch in %.1f s (rank %d)", name, time.perf_counter() - started, basis.change.shape[1])
    for step in range(power_iters):
        tick = time.perf_counter()
        basis = _power_iteration(matrix, basis)
        log.info(
            "svd %s: power iteration %d/%d in %.1f s (rank %d)",
            name,
            step + 1,
            power_iters,
            time.perf_counter() - tick,
            basis.change.shape[1],
        )
    result = _factors(matrix, basis, k, transposed)
    log.info(
        "svd %s: done in %.1f s, s[:5]=%s",
        name,
        time.perf_counter() - started,
        [round(x, 4) for x in result.values[:5]],
    )
    return result


def _sketch(matrix: _BucketedMatrix, width: int, seed: int) -> _Basis:
    """Y = A Omega (summed, cached) and the change of basis that whitens it."""
    parts = matrix.sum_parts(matrix.sketch(width, seed), width).persist(StorageLevel.MEMORY_AND_DISK)
    small = _small(parts, width)
    return _Basis(parts, width, whiten(small[_ROWS_GRAM]), small[_ROWS_SUM][0])


def _power_iteration(matrix: _BucketedMatrix, basis: _Basis) -> _Basis:
    """One power iteration, one Spark job: Y' = A Aᵀ Q, whitened by the Gram matrices of Z = Aᵀ Q
    and of Y' (both computed in the same job)."""
    r = basis.change.shape[1]
    parts = matrix.sum_parts(matrix.power_step(_row_vectors(basis.parts), basis.width, basis.change), r)
    parts = parts.persist(StorageLevel.MEMORY_AND_DISK)
    small = _small(parts, r)
    basis.parts.unpersist()
    z_change = whiten(small[_GRAM])
    change = z_change @ whiten(z_change.T @ small[_ROWS_GRAM] @ z_change)
    return _Basis(parts, r, change, small[_ROWS_SUM][0])


def _factors(matrix: _BucketedMatrix, basis: _Basis, k: int, transposed: bool) -> TruncatedSvd:
    """The final step: Z = Aᵀ Q, the exact re-whitening with Qᵀ Q, the eigen-decomposition of
    B Bᵀ = Zᵀ Z, and U = Q Ub, V = Z Ub / s as row-local maps (zero beyond the numerical rank)."""
    r = basis.change.shape[1]
    z = matrix.transpose_times(_row_vectors(basis.parts), basis.width, basis.change)
    z = z.persist(StorageLevel.MEMORY_AND_DISK)
    small = _small(z, r)
    fix = whiten(small[_BASIS_GRAM])
    values, vectors = np.linalg.eigh(fix.T @ small[_GRAM] @ fix)
    order = np.argsort(values)[::-1][:k]
    s = np.sqrt(np.clip(values[order], 0.0, None))
    vectors = fix @ vectors[:, order]
    live = s > (s[0] if len(s) else 0.0) * math.sqrt(_EIGEN_TOL)
    s = np.where(live, s, 0.0)
    pad = ((0, 0), (0, k - len(s)))
    signs = np.where(basis.y_sum @ basis.change @ vectors < 0, -1.0, 1.0)
    u_change = np.pad(np.where(live, basis.change @ vectors * signs, 0.0), pad)
    v_change = np.pad(np.where(live, vectors * signs / np.where(live, s, 1.0), 0.0), pad)
    singular = tuple(float(x) for x in np.pad(s, (0, k - len(s))))
    u_frame, v_frame = _times(basis.parts, basis.width, u_change), _times(z, r, v_change)
    if transposed:
        u_frame, v_frame = v_frame, u_frame
    cached = (matrix.entries, basis.parts, z)
    return TruncatedSvd(rows=u_frame, cols=v_frame, values=singular, cached=cached)
