"""The barrier task's side without Spark: Arrow batches to float32 blocks, LightGBM's OpenMP policy."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from relisten_spark.models.gbdt import task


def _batch(part: int, valid: list[bool], f0: list[float | None], f1: list[int]) -> pa.RecordBatch:
    n = len(valid)
    return pa.RecordBatch.from_pydict(
        {
            "_part": pa.array([part] * n, pa.int32()),
            "_valid": pa.array(valid),
            "idx": pa.array(range(10 * n, 11 * n), pa.int64()),
            "target": pa.array([i % 2 for i in range(n)], pa.int32()),
            "f0": pa.array(f0, pa.float32()),
            "f1": pa.array(f1, pa.int64()),
        }
    )


def test_feature_block_is_float32_rows_by_features_with_nan_for_null():
    x = task.feature_block(_batch(0, [False] * 3, [0.5, None, 2.25], [1, 2, 3]), ["f1", "f0"])
    assert x.dtype == np.float32
    assert x.flags.c_contiguous
    np.testing.assert_array_equal(x, np.array([[1, 0.5], [2, np.nan], [3, 2.25]], dtype=np.float32))


def test_read_blocks_keeps_fit_batches_whole_and_sorts_calib_rows_by_idx():
    batches = [
        _batch(1, [False, False], [1.0, 2.0], [1, 2]),
        _batch(1, [True, False, True], [3.0, 4.0, 5.0], [3, 4, 5]),
    ]
    blocks = task.read_blocks(batches, ["f0", "f1"], partition=1)
    assert [b.shape for b in blocks.fit_x] == [(2, 2), (1, 2)]
    assert blocks.fit_rows == 3
    val_x, val_y = blocks.validation()
    np.testing.assert_array_equal(val_x[:, 0], [3.0, 5.0])
    np.testing.assert_array_equal(val_y, [0.0, 0.0])


def test_lightgbm_is_imported_with_a_passive_openmp_wait_policy(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert task.lightgbm_module().__name__ == "lightgbm"
    assert task.os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # an explicit setting wins
    task.lightgbm_module()
    assert task.os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
