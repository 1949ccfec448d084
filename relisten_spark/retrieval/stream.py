"""The retriever's sequence shards as model inputs: left-padded token arrays.

:func:`pad_left` turns a Parquet ``array<int>`` column into an int32 matrix, vectorised (no loop
over rows). :class:`SequenceStream` is :class:`~relisten_spark.models.shards.ShardStream` over the
``train`` shards (rank-sharded, shuffled, bounded memory) yielding ``{"tokens": [b, 5, W]}``
batches, ``W = max_len + 1``; :func:`period_batches` reads a rank's share of ``calib`` / ``eval``
rows in order with their targets. :class:`TeacherStream` yields the stage-2 teacher lists.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from relisten_spark.models import shards
from relisten_spark.retrieval.sequences import TOKENS


def pad_left(
    column: pa.Array | pa.ChunkedArray, width: int, fill: float = 0, dtype: type = np.int32
) -> np.ndarray:
    """``[n, width]`` ``dtype``: each list's last ``width`` values, right-aligned, ``fill`` before them.

    >>> pad_left(pa.array([[1, 2, 3], [4], []]), 2).tolist()
    [[2, 3], [0, 4], [0, 0]]
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy().astype(np.int64)
    values = column.flatten().to_numpy(zero_copy_only=False).astype(dtype)
    out: np.ndarray = np.full((len(lengths), width), fill, dtype=dtype)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    within = np.arange(len(values)) - np.repeat(starts, lengths)
    cols = width - (np.repeat(lengths, lengths) - within)
    keep = cols >= 0
    out[rows[keep], cols[keep]] = values[keep]
    return out


def token_matrix(table: pa.Table | pa.RecordBatch, width: int) -> np.ndarray:
    """``[n, 5, width]`` int32: the five token arrays of ``table`` (:data:`TOKENS` order), left-padded."""
    return np.stack([pad_left(table.column(name), width) for name in TOKENS], axis=1)


def trim(tokens: torch.Tensor) -> torch.Tensor:
    """``tokens`` ``[b, 5, W]`` without the leading positions that are padding in every row."""
    used = (tokens[:, 0] != 0).any(0)
    first = int(used.nonzero()[0].item()) if bool(used.any()) else tokens.shape[-1] - 1
    return tokens[..., first:]


class SequenceStream(shards.ShardStream):
    """Batches ``{"tokens": int32 [b, 5, max_len + 1]}`` of one rank's share of the train shards."""

    def __init__(
        self,
        groups: Sequence[shards.RowGroup],
        width: int,
        *,
        batch_rows: int,
        rank: int,
        world: int,
        seed: int,
        shuffle_buffer_rows: int,
    ) -> None:
        super().__init__(
            groups,
            TOKENS,
            (),
            label=None,
            batch_rows=batch_rows,
            rank=rank,
            world=world,
            seed=seed,
            shuffle=True,
            drop_last=True,
            shuffle_buffer_rows=shuffle_buffer_rows,
        )
        self.width = width

    def _chunks(self) -> Iterator[dict[str, np.ndarray]]:
        for piece in self.slices():
            yield {"tokens": token_matrix(shards.read_slice(piece, TOKENS), self.width)}


class TeacherStream(shards.ShardStream):
    """Batches of one rank's share of the stage-2 teacher rows: ``{"tokens": int32 [b, 5, W],
    "candidates": int32 [b, M] (item indices, 0 = none), "ranker": float32 [b, M]}`` (lists
    left-padded), ``W = max_len``; shuffled for training, in order (``shuffle=False``) for the
    held-out measure."""

    def __init__(
        self,
        groups: Sequence[shards.RowGroup],
        width: int,
        list_width: int,
        *,
        batch_rows: int,
        rank: int,
        world: int,
        seed: int,
        shuffle: bool,
    ) -> None:
        super().__init__(
            groups,
            (*TOKENS, "candidates", "ranker"),
            (),
            label=None,
            batch_rows=batch_rows,
            rank=rank,
            world=world,
            seed=seed,
            shuffle=shuffle,
            drop_last=shuffle,  # every rank takes the same number of training steps
        )
        self.width, self.list_width = width, list_width

    def _chunks(self) -> Iterator[dict[str, np.ndarray]]:
        for piece in self.slices():
            table = shards.read_slice(piece, self.categorical)
            yield {
                "tokens": token_matrix(table, self.width),
                "candidates": pad_left(table.column("candidates"), self.list_width),
                "ranker": pad_left(table.column("ranker"), self.list_width, dtype=np.float32),
            }


def period_batches(
    groups: Sequence[shards.RowGroup], rank: int, world: int, width: int, batch_rows: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's contiguous share of ``calib`` / ``eval`` rows, in order, as batches of
    ``(tokens int64 [b, 5, width], targets int64 [b, T])`` (targets right-padded with -1)."""
    for piece in shards.rank_slices(list(groups), rank, world, drop_last=False):
        table = shards.read_slice(piece, [*TOKENS, "targets"])
        for lo in range(0, table.num_rows, batch_rows):
            part = table.slice(lo, batch_rows)
            targets = part.column("targets")
            longest = max(1, int(pc.max(pc.list_value_length(targets)).as_py() or 0))
            padded = pad_left(targets, longest, fill=-1)  # order does not matter: a set
            yield torch.from_numpy(token_matrix(part, width)).long(), torch.from_numpy(padded).long()
