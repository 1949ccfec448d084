"""The Parquet shard loader: disjoint exact shares, full coverage, bounded batches and reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from relisten_spark.models import shards
from relisten_spark.models.shards import ShardStream

pytestmark = pytest.mark.torch

CATS, NUMS = ["code"], ["value"]


def write_files(folder: Path, sizes: list[int], row_group: int) -> list[str]:
    """Files of consecutive ``idx`` rows; code = idx % 7 (null every 11th), value = idx / 2."""
    paths, start = [], 0
    for k, size in enumerate(sizes):
        idx = np.arange(start, start + size, dtype=np.int64)
        code = pa.array([None if i % 11 == 0 else int(i % 7) for i in idx], pa.int32())
        table = pa.table({"idx": idx, "code": code, "value": (idx / 2).astype(np.float32), "target": idx % 2})
        path = folder / f"part-{k}.parquet"
        pq.write_table(table, path, row_group_size=row_group)
        paths.append(f"file://{path}")
        start += size
    return paths


@pytest.fixture
def groups(tmp_path) -> list[shards.RowGroup]:
    return shards.list_row_groups(write_files(tmp_path, [250, 130, 77], row_group=40))


def _stream(groups, rank: int, world: int, **kw) -> ShardStream:
    defaults = {"label": "target", "batch_rows": 16, "shuffle_buffer_rows": 64}
    return ShardStream(groups, CATS, NUMS, rank=rank, world=world, **{**defaults, **kw})


def _idx(stream: ShardStream) -> list[int]:
    """The rows a stream yields, recovered from ``value`` = idx / 2."""
    return [round(2 * v) for batch in stream for v in batch["num"][:, 0].tolist()]


def test_row_groups_are_listed_from_the_footers(groups) -> None:
    assert [g.rows for g in groups] == [40] * 6 + [10] + [40] * 3 + [10] + [40, 37]
    assert [g.index for g in groups[:7]] == list(range(7))
    assert all(not g.path.startswith("file:") for g in groups)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_validation_shares_are_disjoint_and_cover_every_row_in_order(groups, world) -> None:
    shares = [_idx(_stream(groups, r, world)) for r in range(world)]
    assert [i for share in shares for i in share] == list(range(457))  # contiguous, file order, once
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


@pytest.mark.parametrize("epoch", [0, 3])
def test_training_shares_are_disjoint_equal_and_drop_fewer_than_world_rows(groups, epoch) -> None:
    streams = [_stream(groups, r, 2, shuffle=True, drop_last=True, seed=5) for r in range(2)]
    for s in streams:
        s.set_epoch(epoch)
    shares = [_idx(s) for s in streams]
    assert len(shares[0]) == len(shares[1]) == 228
    assert not set(shares[0]) & set(shares[1])
    assert len(set(shares[0]) | set(shares[1])) == 456  # one of 457 rows sits this epoch out
    assert streams[0].batches_per_epoch() == streams[1].batches_per_epoch() == 15


def test_each_rank_reads_only_its_row_groups(groups) -> None:
    slices = [_stream(groups, r, 2, shuffle=True, drop_last=True, seed=1).slices() for r in range(2)]
    read = [{(s.group.path, s.group.index) for s in share} for share in slices]
    assert len(read[0] & read[1]) <= 1  # at most the row group cut by the boundary
    assert len(read[0] | read[1]) == len(groups)


def test_batches_are_bounded_and_shuffling_is_seeded(groups) -> None:
    stream = _stream(groups, 0, 1, shuffle=True, drop_last=True, seed=9)
    batches = list(stream)
    assert all(len(b["num"]) == len(b["cat"]) == len(b["label"]) == 16 for b in batches[:-1])
    assert 0 < len(batches[-1]["num"]) <= 16
    first = _idx(stream)
    assert first == _idx(_stream(groups, 0, 1, shuffle=True, drop_last=True, seed=9))
    assert sorted(first) == list(range(457))
    assert first != list(range(457))
    stream.set_epoch(1)
    assert _idx(stream) != first


def test_streaming_reads_row_groups_lazily(groups, monkeypatch) -> None:
    reads = []
    original = shards.read_slice

    def counting(piece, columns):
        reads.append(piece)
        return original(piece, columns)

    monkeypatch.setattr(shards, "read_slice", counting)
    iterator = iter(_stream(groups, 0, 1, shuffle=True, shuffle_buffer_rows=64))
    next(iterator)
    rows = [piece.stop - piece.start for piece in reads]
    assert sum(rows[:-1]) < 64 <= sum(rows)  # just enough row groups to fill the 64-row buffer
    assert len(reads) < len(groups)


def test_batches_carry_codes_values_and_labels(groups) -> None:
    batch = next(iter(_stream(groups, 0, 1, batch_rows=12)))
    assert batch["cat"].dtype.is_floating_point is False
    assert batch["cat"][:, 0].tolist() == [-1, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, -1]  # null -> -1
    assert batch["num"][:, 0].tolist() == [i / 2 for i in range(12)]
    assert batch["label"].tolist() == [i % 2 for i in range(12)]


def test_to_arrays_maps_nulls() -> None:
    table = pa.table({"code": pa.array([3, None], pa.int64()), "value": pa.array([1.5, None], pa.float64())})
    cat, num = shards.to_arrays(table, CATS, NUMS)
    assert cat.tolist() == [[3], [-1]]
    assert num[0, 0] == 1.5
    assert np.isnan(num[1, 0])


def test_to_arrays_takes_integers_beyond_float32_exact_range() -> None:
    """Epoch seconds (> 2**24) in an int column must not make the batch conversion fail."""
    batch = pa.table(
        {"code": pa.array([3, None], pa.int32()), "t": pa.array([1_506_787_200, None], pa.int64())}
    )
    cat, num = shards.to_arrays(batch, ["code"], ["t"])
    assert cat[:, 0].tolist() == [3, -1]
    assert num[0, 0] == pytest.approx(1_506_787_200, rel=1e-7)
    assert np.isnan(num[1, 0])
