"""A stage is atomic across its tables (relisten_spark.commits): a run killed before, between or
after its table commits leaves every reader on one run's consistent set of tables, and the
next run repairs everything (its tables, the dead run's staging folders).

The fast test stops a stage in this process at the same named points as the kill hook (the
hook raises instead of killing, so pytest survives); the slow ones SIGKILL a real
``relisten ingest`` / ``relisten features`` process through ``RELISTEN_KILL_AT``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from relisten_spark import commits, lake
from relisten_spark.config import Config, load_config
from relisten_spark.data import kkbox
from relisten_spark.data.synthetic import generator
from relisten_spark.errors import LakeError
from relisten_spark.features import build
from relisten_spark.features.bronze import read_bronze

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parents[1]


class Killed(BaseException):
    """Stands in for SIGKILL inside the test process."""


def _stop_at(monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    def kill_point(name: str) -> None:
        if name == point:
            raise Killed(name)

    monkeypatch.setattr(commits, "kill_point", kill_point)


def _mini_ingest(spark, cfg: Config, users: list[str]) -> dict[str, int]:
    """A two-table stage: events of ``users`` and the members they point at."""
    events = spark.createDataFrame(
        [(u, f"s{i}") for u in users for i in range(2)], "msno string, song_id string"
    )
    members = spark.createDataFrame([(u,) for u in users], "msno string")
    with commits.StageRun(spark, cfg, "bronze", "ingest", ["events", "members"]) as out:
        out.prepare("events", events)
        out.prepare("members", members)
        return out.commit()


def _users(spark, cfg: Config, table: str) -> list[str]:
    frame = lake.read(spark, lake.table_path(cfg.lake.root, "bronze", table))
    return sorted({r.msno for r in frame.select("msno").collect()})


def test_ingest_killed_after_its_first_table_leaves_readers_on_the_previous_run(
    spark, tmp_lake: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's failure: ingest stopped after committing bronze.events left it new and
    members old (every event pointing at a user that is not there)."""
    _mini_ingest(spark, tmp_lake, ["u1", "u2"])
    _stop_at(monkeypatch, "ingest:committed:events")
    with pytest.raises(Killed):
        _mini_ingest(spark, tmp_lake, ["v1", "v2", "v3"])
    events = lake.table_path(tmp_lake.lake.root, "bronze", "events")
    assert lake.version(events) == 1  # the new events are committed to the table ...
    assert (
        _users(spark, tmp_lake, "events") == _users(spark, tmp_lake, "members") == ["u1", "u2"]
    )  # ... unseen
    monkeypatch.undo()
    _mini_ingest(spark, tmp_lake, ["v1", "v2", "v3"])
    assert _users(spark, tmp_lake, "events") == _users(spark, tmp_lake, "members") == ["v1", "v2", "v3"]


# ---- real processes, SIGKILLed (slow) ------------------------------------------------------------


def _generate(raw: Path, users: int, seed: int) -> None:
    sizes = [f"data.synthetic.users={users}", "data.synthetic.songs=120", "data.synthetic.events=600"]
    generator.run(load_config(None, [f"data.raw_dir={raw}", f"data.synthetic.seed={seed}", *sizes]))


def _config(tmp_path: Path, raw: str) -> Config:
    return load_config(
        None,
        [
            "spark.master=local[2]",
            f"lake.root={tmp_path / 'lake'}",
            f"models.root={tmp_path / 'models'}",
            f"data.raw_dir={tmp_path / raw}",
        ],
    )


def _killed(command: str, cfg: Config, point: str) -> None:
    """Run ``relisten <command>`` in its own process, SIGKILLed at ``point``."""
    env = {**os.environ, commits.KILL_ENV: point, "PYSPARK_PYTHON": sys.executable}
    args = ["spark.master=local[1]", f"lake.root={cfg.lake.root}", f"data.raw_dir={cfg.data.raw_dir}"]
    argv = [sys.executable, "-m", "relisten_spark", command, *[a for s in args for a in ("--set", s)]]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == -9, done.stderr[-2000:]


def _bronze_shape(spark, cfg: Config) -> tuple[int, ...]:
    """Rows of events, members and songs, and events whose user or song is not there (a mix
    of two ingests makes every event such an orphan)."""
    frames = read_bronze(spark, cfg)
    return (
        frames.events.count(),
        frames.members.count(),
        frames.songs.count(),
        frames.events.join(frames.members, "msno", "left_anti").count(),
        frames.events.join(frames.songs, "song_id", "left_anti").count(),
    )


def _staging(cfg: Config, layer: str) -> list[str]:
    folder = Path(cfg.lake.root) / layer
    return sorted(str(p.relative_to(folder)) for p in folder.glob("*/_staging/*"))


@pytest.fixture(scope="module")
def raw_dirs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("raw")
    _generate(base / "a", users=40, seed=1)
    _generate(base / "b", users=60, seed=2)
    return base


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "visible"),
    [
        ("ingest:staged:members", "a"),  # before any table commit
        ("ingest:committed:events", "a"),  # between the table commits
        ("ingest:committed:quarantine", "a"),  # every table committed, the run not recorded
        ("ingest:recorded", "b"),  # after the run's _commits row
    ],
)
def test_ingest_sigkilled_leaves_a_consistent_bronze(
    spark, tmp_path: Path, raw_dirs: Path, point, visible
) -> None:
    for name in "ab":
        (tmp_path / name).symlink_to(raw_dirs / name)
    first, second = _config(tmp_path, "a"), _config(tmp_path, "b")
    kkbox.run(spark, first)
    want = {"a": _bronze_shape(spark, first)}
    _killed("ingest", second, point)
    got = _bronze_shape(spark, second)
    kkbox.run(spark, second)  # the repair: the next run (a no-op when the killed run had committed)
    want["b"] = _bronze_shape(spark, second)
    assert want["b"] != want["a"]
    assert got == want[visible]
    assert _staging(second, "bronze") == []


@pytest.mark.slow
@pytest.mark.parametrize("point", ["features:committed:features", "features:committed:label_codes"])
def test_features_sigkilled_leaves_a_consistent_silver(spark, tmp_path: Path, raw_dirs: Path, point) -> None:
    for name in "ab":
        (tmp_path / name).symlink_to(raw_dirs / name)
    first, second = _config(tmp_path, "a"), _config(tmp_path, "b")

    def silver_users() -> tuple[set[str], set[str]]:
        def users(name: str) -> set[str]:
            path = lake.table_path(first.lake.root, "silver", name)
            frame = lake.read(spark, path, where={"profile": "full"}).select("msno").distinct()
            return {r.msno for r in frame.collect()}

        return users("features"), users("svd_member")

    kkbox.run(spark, first)
    users_a = {r.msno for r in read_bronze(spark, first).members.select("msno").collect()}
    build.run(spark, first)
    assert silver_users() == (users_a, users_a)
    kkbox.run(spark, second)
    _killed("features", second, point)
    assert silver_users() == (users_a, users_a)
    build.run(spark, second)  # the repair
    users_b = {r.msno for r in read_bronze(spark, second).members.select("msno").collect()}
    features_users, svd_users = silver_users()
    assert features_users == svd_users
    assert features_users <= users_b
    assert not features_users & users_a
    assert _staging(second, "silver") == []


@pytest.mark.slow
def test_rerun_of_a_killed_ingest_names_no_half_state(spark, tmp_path: Path, raw_dirs: Path) -> None:
    """A lake whose only ingest was killed mid-way has no committed bronze: readers get one
    clear line, never the half-written tables."""
    (tmp_path / "a").symlink_to(raw_dirs / "a")
    cfg = _config(tmp_path, "a")
    _killed("ingest", cfg, "ingest:committed:songs")
    with pytest.raises(LakeError, match=r"bronze/events has no committed version: stage run ingest-"):
        read_bronze(spark, cfg)
    kkbox.run(spark, cfg)
    events = read_bronze(spark, cfg).events
    assert events.where(F.col("split") == "train").count() > 0
