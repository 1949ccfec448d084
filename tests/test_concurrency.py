"""Two score runs for the same run date at once: one wins, the other fails with a write
conflict naming the winner, and the date's partitions hold the winner's rows, all of them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from relisten_spark import lake
from relisten_spark.config import Config
from relisten_spark.runs import new_run_id
from relisten_spark.scoring import score

pytestmark = pytest.mark.spark

DATE = "2026-11-23"


def _ranked(spark, cfg: Config, model: str, n: int):
    rows = [
        (s, f"user-{model}", r, f"song{r}", 1.0 / r, [])
        for s in cfg.scoring.surfaces
        for r in range(1, n + 1)
    ]
    return spark.createDataFrame(rows, score.rank.RANKED_SCHEMA)


def _partition(spark, cfg: Config, surface: str) -> list[tuple[str, int]]:
    frame = lake.read(spark, score.recs_path(cfg, surface), where={"run_date": DATE})
    return sorted((r.model_version, r.rank) for r in frame.collect())


@pytest.mark.slow
def test_two_score_runs_for_one_date_one_wins_the_other_fails_cleanly(spark, tmp_lake: Config) -> None:
    cfg = tmp_lake
    score.write_recs(spark, cfg, _ranked(spark, cfg, "other-day", 2), "2026-11-22", "other-day")
    started = {name: score.recs_stage(spark, cfg, new_run_id("score"), DATE) for name in ("a", "b")}
    outcome: dict[str, object] = {}

    def run(name: str) -> None:
        try:
            outcome[name] = score.write_recs(
                spark, cfg, _ranked(spark, cfg, name, 3), DATE, name, started[name]
            )
        except lake.WriteConflictError as exc:
            outcome[name] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in started]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    winners = [name for name, got in outcome.items() if isinstance(got, dict)]
    losers = [name for name, got in outcome.items() if isinstance(got, Exception)]
    assert (len(winners), len(losers)) == (1, 1), outcome
    message = str(outcome[losers[0]])
    assert message.startswith("write conflict on ")
    assert f"run {started[winners[0]].run_id} committed version" in message
    assert "this run's write was not committed: rerun it" in message
    for surface in cfg.scoring.surfaces:
        assert _partition(spark, cfg, surface) == [(winners[0], r) for r in (1, 2, 3)]
        other = lake.read(spark, score.recs_path(cfg, surface), where={"run_date": "2026-11-22"})
        assert other.count() == 2  # another date's partition is untouched
    assert not list(Path(cfg.lake.root).glob("gold/*/_staging/*"))
