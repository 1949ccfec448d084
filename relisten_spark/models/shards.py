"""Stream a Parquet table to DDP ranks: each rank reads its own share of row groups.

The nets' input shards are written by Spark (:mod:`relisten_spark.models.ddp.inputs`, few large
files, row groups sized for streaming). The driver lists its row groups once from the Parquet footers
(:func:`list_row_groups`, cheap: bounded by the number of files) and sends the list to every
rank; each rank then reads only the row groups of its share with ``pyarrow.dataset``.

Sharding is exact at row level. Every epoch the row groups are put in one global order (a
seeded permutation when shuffling, file order otherwise) and the concatenated rows are cut into
``world`` contiguous ranges; rank ``r`` reads the row groups that overlap range ``r`` and slices
them. With ``drop_last`` (training) every range has ``rows // world`` rows, so all ranks run the
same number of steps (DDP needs that) and at most ``world - 1`` rows sit out an epoch (a
different few each epoch); without it (validation, scoring) the ranges cover every row once.

Memory is bounded: a rank holds at most one row group plus a shuffle buffer of
``shuffle_buffer_rows`` rows, never its whole share.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import torch
from torch.utils.data import IterableDataset

log = logging.getLogger(__name__)

NULL_INPUT_CODE = -1  # a null categorical input; the nets map it (like unseen codes) to their unknown row


@dataclass(frozen=True)
class RowGroup:
    """One Parquet row group: the file (a path or URI pyarrow can open), its index, its rows."""

    path: str
    index: int
    rows: int


@dataclass(frozen=True)
class Slice:
    """Rows ``[start, stop)`` of one row group."""

    group: RowGroup
    start: int
    stop: int


def pyarrow_path(uri: str) -> str:
    """A path pyarrow can open: ``file:`` URIs become paths, ``dbfs:/`` goes through ``/dbfs``.

    >>> pyarrow_path("file:///tmp/t/a.parquet"), pyarrow_path("dbfs:/lake/a.parquet")
    ('/tmp/t/a.parquet', '/dbfs/lake/a.parquet')
    """
    if uri.startswith("file://"):
        return uri[len("file://") :]
    if uri.startswith("file:"):
        return uri[len("file:") :]
    if uri.startswith("dbfs:/"):
        return "/dbfs/" + uri[len("dbfs:/") :].lstrip("/")
    return uri


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def list_row_groups(uris: Sequence[str]) -> list[RowGroup]:
    """The row groups of ``uris`` in a stable order (sorted files, then row group index)."""
    groups: list[RowGroup] = []
    fmt = ds.ParquetFileFormat()
    for uri in sorted(uris):
        path = pyarrow_path(uri)
        fs, inner = _filesystem(path)
        fragment = fmt.make_fragment(inner, filesystem=fs)
        fragment.ensure_complete_metadata()
        groups.extend(RowGroup(path, rg.id, rg.num_rows) for rg in fragment.row_groups if rg.num_rows > 0)
    return groups


def epoch_order(groups: Sequence[RowGroup], epoch: int, seed: int, shuffle: bool) -> list[RowGroup]:
    """The global row-group order of ``epoch``: a permutation seeded by (seed, epoch), or as given."""
    if not shuffle:
        return list(groups)
    perm = np.random.default_rng([seed, epoch]).permutation(len(groups))
    return [groups[i] for i in perm]


def rank_range(total: int, rank: int, world: int, drop_last: bool) -> tuple[int, int]:
    """Rows ``[start, stop)`` of the global order that belong to ``rank``.

    >>> [rank_range(10, r, 3, True) for r in range(3)], [rank_range(10, r, 3, False) for r in range(3)]
    ([(0, 3), (3, 6), (6, 9)], [(0, 3), (3, 6), (6, 10)])
    """
    if drop_last:
        per = total // world
        return rank * per, (rank + 1) * per
    return total * rank // world, total * (rank + 1) // world


def rank_slices(ordered: Sequence[RowGroup], rank: int, world: int, drop_last: bool) -> list[Slice]:
    """The pieces of row groups that make up ``rank``'s contiguous range of ``ordered``."""
    start, stop = rank_range(sum(g.rows for g in ordered), rank, world, drop_last)
    slices: list[Slice] = []
    offset = 0
    for group in ordered:
        lo, hi = max(start, offset), min(stop, offset + group.rows)
        if lo < hi:
            slices.append(Slice(group, lo - offset, hi - offset))
        offset += group.rows
        if offset >= stop:
            break
    return slices


def read_slice(piece: Slice, columns: Sequence[str]) -> pa.Table:
    """Read one row group (only ``columns``) with pyarrow.dataset and cut it to the slice."""
    fs, inner = _filesystem(piece.group.path)
    fragment = ds.ParquetFileFormat().make_fragment(inner, filesystem=fs, row_groups=[piece.group.index])
    table = fragment.to_table(columns=list(columns))
    return table.slice(piece.start, piece.stop - piece.start)


def to_arrays(
    table: pa.Table | pa.RecordBatch, categorical: Sequence[str], numeric: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs of a batch: int64 codes ``[n, len(categorical)]`` (null -> -1) and float32
    values ``[n, len(numeric)]`` (null -> NaN). The model maps -1/unseen codes and NaN itself."""
    n = table.num_rows
    cat = np.empty((n, len(categorical)), dtype=np.int64)
    for j, name in enumerate(categorical):
        column = pc.fill_null(pc.cast(table.column(name), pa.int64()), NULL_INPUT_CODE)
        cat[:, j] = column.to_numpy()
    num = np.empty((n, len(numeric)), dtype=np.float32)
    for j, name in enumerate(numeric):
        # via float64: a safe int -> float32 cast refuses integers above 2**24 (epoch seconds)
        num[:, j] = pc.cast(table.column(name), pa.float64()).to_numpy(zero_copy_only=False)
    return cat, num


class ShardStream(IterableDataset):
    """Batches of one rank's share: ``{"cat", "num"[, "label"]}`` tensors.

    ``batch_rows`` rows per batch (the last one may be shorter). With ``shuffle`` the row-group
    order is permuted per epoch (call :meth:`set_epoch`) and rows are shuffled inside a buffer of
    ``shuffle_buffer_rows``; without it rows come in the global order (validation, scoring).
    """

    def __init__(
        self,
        groups: Sequence[RowGroup],
        categorical: Sequence[str],
        numeric: Sequence[str],
        *,
        label: str | None,
        batch_rows: int,
        rank: int = 0,
        world: int = 1,
        seed: int = 0,
        shuffle: bool = False,
        drop_last: bool = False,
        shuffle_buffer_rows: int = 131_072,
    ) -> None:
        super().__init__()
        if batch_rows < 1:
            raise ValueError("batch_rows must be positive")
        self.groups = list(groups)
        self.categorical = list(categorical)
        self.numeric = list(numeric)
        self.label = label
        self.batch_rows = batch_rows
        self.rank, self.world = rank, world
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.shuffle_buffer_rows = max(shuffle_buffer_rows, batch_rows)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def slices(self) -> list[Slice]:
        ordered = epoch_order(self.groups, self.epoch, self.seed, self.shuffle)
        return rank_slices(ordered, self.rank, self.world, self.drop_last)

    def rows(self) -> int:
        """Rows this rank yields per epoch."""
        return sum(s.stop - s.start for s in self.slices())

    def batches_per_epoch(self) -> int:
        return -(-self.rows() // self.batch_rows)

    def _columns(self) -> list[str]:
        extra = [self.label] if self.label else []
        return list(dict.fromkeys([*self.categorical, *self.numeric, *extra]))

    def _chunks(self) -> Iterator[dict[str, np.ndarray]]:
        columns = self._columns()
        for piece in self.slices():
            table = read_slice(piece, columns)
            cat, num = to_arrays(table, self.categorical, self.numeric)
            chunk = {"cat": cat, "num": num}
            if self.label:
                chunk["label"] = pc.cast(table.column(self.label), pa.float32()).to_numpy(
                    zero_copy_only=False
                )
            yield chunk

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, 1])
        buffer: list[dict[str, np.ndarray]] = []
        held = 0
        for chunk in self._chunks():
            buffer.append(chunk)
            held += rows_of(chunk)
            if held >= self.shuffle_buffer_rows:
                merged = _merge(buffer, rng if self.shuffle else None)
                usable = held - held % self.batch_rows
                yield from self._batches(merged, usable)
                rest = {k: v[usable:] for k, v in merged.items()}
                buffer, held = ([rest], held - usable) if held > usable else ([], 0)
        if held:
            merged = _merge(buffer, rng if self.shuffle else None)
            yield from self._batches(merged, held)

    def _batches(self, merged: dict[str, np.ndarray], rows: int) -> Iterator[dict[str, torch.Tensor]]:
        for lo in range(0, rows, self.batch_rows):
            hi = min(lo + self.batch_rows, rows)
            yield {k: torch.from_numpy(np.ascontiguousarray(v[lo:hi])) for k, v in merged.items()}


def rows_of(chunk: Mapping[str, Sized]) -> int:
    """Rows of a chunk or batch of named arrays (every array of it has one row per table row)."""
    return len(next(iter(chunk.values())))


def _merge(buffer: list[dict[str, np.ndarray]], rng: np.random.Generator | None) -> dict[str, np.ndarray]:
    merged = {k: np.concatenate([c[k] for c in buffer]) for k in buffer[0]}
    if rng is not None:
        perm = rng.permutation(rows_of(merged))
        merged = {k: v[perm] for k, v in merged.items()}
    return merged
