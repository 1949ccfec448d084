"""The barrier task's side without Spark: Arrow batches to float32 blocks, how LightGBM is imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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


def test_the_peers_are_called_at_the_first_fit_row_not_after_the_read():
    """The task announces itself (allGather) as soon as it knows it has fit rows, so that the
    barrier's once-a-second poll overlaps the rest of the read."""
    consumed: list[int] = []
    calls: list[int] = []

    def batches():
        for i, valid in enumerate([[True, True], [True, False], [False], [False, False]]):
            consumed.append(i)
            yield _batch(0, valid, [1.0] * len(valid), [1] * len(valid))

    blocks = task.read_blocks(batches(), ["f0"], 0, on_first_fit_row=lambda: calls.append(len(consumed)))
    assert calls == [2]  # once, while the second batch (the first with a fit row) was read
    assert blocks.fit_rows == 4
    calib_only = task.read_blocks([_batch(0, [True], [1.0], [1])], ["f0"], 0, lambda: calls.append(-1))
    assert calib_only.fit_rows == 0
    assert calls == [2]  # calib rows alone do not count


def _imports(in_task: bool) -> str:
    """Which of lightgbm / sklearn a fresh interpreter holds after ``lightgbm_module()``, in or
    out of a Spark task context, and whether ``import sklearn`` works afterwards."""
    code = textwrap.dedent(
        f"""
        import sys
        from pyspark import TaskContext
        if {in_task}:
            TaskContext._getOrCreate()  # what a Python worker sets up before running a task
        from relisten_spark.models.gbdt.task import lightgbm_module
        lightgbm_module()
        held = [m for m in ("lightgbm", "sklearn") if m in sys.modules]
        import sklearn
        print(",".join(held))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_tasks_import_lightgbm_without_its_scikit_learn_api():
    assert _imports(in_task=True) == "lightgbm"  # 0.65 s less per fresh Python worker
    assert _imports(in_task=False) == "lightgbm,sklearn"  # the driver keeps lightgbm's full API
