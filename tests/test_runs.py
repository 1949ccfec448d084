"""gold.runs keeps one row per job run with the numbers of its summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from relisten_spark import lake
from relisten_spark.runs import record_run, runs_path

pytestmark = pytest.mark.spark


def test_runs_are_appended_with_counts_and_timings(spark, tmp_lake) -> None:
    start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    summary = {
        "rows": {"events": 120, "members": 7},
        "seconds": {"read": 1.5},
        "model_versions": {"lightgbm": "v1"},
        "input_versions": {"silver.features": 3},
        "ok": True,
    }
    record_run(spark, tmp_lake, "r1", "score", start, start + timedelta(seconds=9), "succeeded", "", summary)
    record_run(spark, tmp_lake, "r2", "score", start, start + timedelta(seconds=1), "failed", "boom", {})
    rows = {r.run_id: r for r in lake.read(spark, runs_path(tmp_lake)).collect()}
    assert set(rows) == {"r1", "r2"}
    first = rows["r1"]
    assert first.row_counts == {"rows.events": 120, "rows.members": 7}
    assert first.timings_s == {"seconds.read": 1.5, "total": 9.0}
    assert first.model_versions == {"lightgbm": "v1"}
    assert first.input_versions == {"silver.features": 3}
    assert first.config_hash == tmp_lake.digest()
    assert (rows["r2"].status, rows["r2"].message) == ("failed", "boom")
