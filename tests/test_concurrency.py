"""Two score runs for the same run date at once: one wins, the other fails with a write
conflict naming the winner, and the date's partitions hold the winner's rows, all of them.
Once as two threads of one session, once as two processes (two JVMs, like two
``relisten score`` jobs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from relisten_spark import lake
from relisten_spark.config import Config, load_config
from relisten_spark.runs import new_run_id
from relisten_spark.scoring import score
from relisten_spark.session import build_session

pytestmark = pytest.mark.spark

DATE = "2026-11-23"
ROOT = Path(__file__).resolve().parents[1]


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
    _check_one_winner(
        spark,
        cfg,
        {name: ("ok" if isinstance(got, dict) else str(got)) for name, got in outcome.items()},
        {name: out.run_id for name, out in started.items()},
    )


def _check_one_winner(spark, cfg: Config, outcome: dict[str, str], run_ids: dict[str, str]) -> None:
    """One run committed ("ok"), the other failed with a conflict naming the winner; the date's
    partitions hold the winner's rows, all of them; the other date and no staging is left."""
    winners = [name for name, got in outcome.items() if got == "ok"]
    losers = [name for name, got in outcome.items() if got != "ok"]
    assert (len(winners), len(losers)) == (1, 1), outcome
    message = outcome[losers[0]]
    assert message.startswith("write conflict on ")
    assert f"run {run_ids[winners[0]]} committed version" in message
    assert "this run's write was not committed: rerun it" in message
    for surface in cfg.scoring.surfaces:
        assert _partition(spark, cfg, surface) == [(winners[0], r) for r in (1, 2, 3)]
        other = lake.read(spark, score.recs_path(cfg, surface), where={"run_date": "2026-11-22"})
        assert other.count() == 2  # another date's partition is untouched
    assert not list(Path(cfg.lake.root).glob("gold/*/_staging/*"))


def _settings(cfg: Config) -> list[str]:
    return [
        "spark.master=local[1]",
        f"lake.root={cfg.lake.root}",
        f"models.root={cfg.models.root}",
        "tracking.enabled=false",
    ]


def score_process(name: str, ready_dir: str, settings: list[str]) -> dict[str, str]:
    """Run in a child process: note the run's versions, wait until the other process has too,
    then write the date's partitions; ``{"run_id", "outcome"}`` (``ok`` or the conflict line)."""
    cfg = load_config(None, settings)
    spark = build_session(cfg.spark)
    out = score.recs_stage(spark, cfg, new_run_id("score"), DATE)
    ready = Path(ready_dir)
    (ready / name).touch()
    deadline = time.time() + 240
    while len(list(ready.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.1)
    try:
        score.write_recs(spark, cfg, _ranked(spark, cfg, name, 3), DATE, name, out)
        outcome = "ok"
    except lake.WriteConflictError as exc:
        outcome = str(exc)
    spark.stop()
    return {"run_id": out.run_id, "outcome": outcome}


@pytest.mark.slow
def test_two_score_processes_for_one_date_one_wins_the_other_fails_cleanly(
    spark, tmp_lake: Config, tmp_path: Path
) -> None:
    cfg = tmp_lake
    score.write_recs(spark, cfg, _ranked(spark, cfg, "other-day", 2), "2026-11-22", "other-day")
    ready = tmp_path / "ready"
    ready.mkdir()
    children = {
        name: subprocess.Popen(
            [sys.executable, __file__, name, str(ready), *_settings(cfg)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYSPARK_PYTHON": sys.executable},
        )
        for name in ("a", "b")
    }
    results = {}
    for name, child in children.items():
        stdout, stderr = child.communicate(timeout=400)
        assert child.returncode == 0, stderr[-3000:]
        results[name] = json.loads(stdout.strip().splitlines()[-1])
    outcome = {name: got["outcome"] for name, got in results.items()}
    _check_one_winner(spark, cfg, outcome, {name: got["run_id"] for name, got in results.items()})


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(score_process(sys.argv[1], sys.argv[2], sys.argv[3:])))
