"""The in-epoch progress line of the training ranks (relisten_spark.models.ddp.progress)."""

from __future__ import annotations

import logging

import pytest

from relisten_spark.models.ddp.progress import with_progress


def _clock(step_s: float):
    ticks = iter(range(0, 10_000))
    return lambda: next(ticks) * step_s


def test_a_line_a_minute_with_rows_done_rate_and_time_left(caplog: pytest.LogCaptureFixture) -> None:
    batches = [[0] * 10] * 9  # 90 rows, 30 s a batch on the fake clock
    with caplog.at_level(logging.INFO, logger="relisten_spark.models.ddp.progress"):
        out = list(with_progress(batches, len, 90, "retriever epoch 1/3", "sequences", clock=_clock(30.0)))
    assert out == batches  # the batches pass through unchanged
    lines = [r.getMessage() for r in caplog.records]
    # lines after 60, 120, 180 and 240 s (2, 4, 6 and 8 batches); none after the last batch
    assert lines == [
        f"retriever epoch 1/3: {done} of 90 sequences ({100 * done / 90:.0f} %) on this rank, "
        f"0.3 sequences/s, about {'<1' if done == 80 else round((90 - done) / (1 / 3) / 60)} min left"
        for done in (20, 40, 60, 80)
    ]


def test_other_ranks_and_short_epochs_log_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="relisten_spark.models.ddp.progress"):
        list(with_progress([[1]] * 50, len, 50, None, "rows", clock=_clock(30.0)))  # rank > 0
        list(with_progress([[1]] * 50, len, 50, "short", "rows", clock=_clock(1.0)))  # 50 s in all
    assert caplog.records == []
