"""Stage runs that are atomic across their tables.

A stage that writes several tables (``ingest``: the bronze tables; ``features``: a profile's
silver partitions; ``score``: a run date's recommendation partitions) writes them through a
:class:`StageRun`:

1. at start the run removes the staging folders of dead runs of its tables, notes each output
   table's version (``since``: a later commit by another run to the same table or partition is
   a conflict, :class:`lake.WriteConflictError`) and can tell whether its inputs and config
   equal the last committed run's (:meth:`StageRun.unchanged`);
2. :meth:`StageRun.prepare` prepares each table's write (Parquet staged inside the table, nothing
   visible);
3. :meth:`StageRun.commit` commits the tables in the order they were staged, every commit
   carrying the run's ``stage_run_id`` (the ``run_id`` of its ``gold.runs`` row), then appends
   one row to the layer's ``_commits`` table (schemas.STAGE_COMMITS): that row is the run's
   commit point.

Readers (:func:`lake.read`) see a table's newest version written by a plain write or by a
stage run with a ``_commits`` row, so a stage killed anywhere leaves every reader on the
previous run's consistent set; the next run commits over it.

Test-only hook: with ``RELISTEN_KILL_AT=<stage>:<point>`` in the environment the process
SIGKILLs itself at that point: ``staged:<table>``, ``committed:<table>`` (the table's commit
done), ``recorded`` (the ``_commits`` row written).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import pyarrow.compute as pc
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from relisten_spark import lake, lake_files, lake_log, runs, schemas
from relisten_spark.config import Config
from relisten_spark.housekeeping import vacuum_table

log = logging.getLogger(__name__)

KILL_ENV = "RELISTEN_KILL_AT"


def kill_point(name: str) -> None:
    """Test-only: SIGKILL this process when ``RELISTEN_KILL_AT`` equals ``name``."""
    if os.environ.get(KILL_ENV) == name:
        log.warning("%s=%s: killing the process", KILL_ENV, name)
        os.kill(os.getpid(), signal.SIGKILL)


def file_fingerprints(paths: Mapping[str, str]) -> dict[str, str]:
    """``{name: "<bytes>:<mtime ns>"}`` of input files (a missing file: ``"missing"``)."""
    out = {}
    for name, path in paths.items():
        try:
            st = os.stat(path)
        except OSError:
            out[name] = "missing"
            continue
        out[name] = f"{st.st_size}:{st.st_mtime_ns}"
    return out


@dataclass(frozen=True)
class Committed:
    """A ``_commits`` row: the run, its table versions, input fingerprints and config hash."""

    run_id: str
    versions: dict[str, int]
    inputs: dict[str, str]
    config_hash: str


def last_committed(root: str, layer: str, stage: str, scope: str) -> Committed | None:
    """The newest ``_commits`` row of ``stage`` and ``scope`` in ``layer`` (None: none yet)."""
    path = lake.table_path(root, layer, lake.COMMITS_TABLE)
    if not lake.exists(path):
        return None
    rows = DeltaTable(path).to_pyarrow_table()
    rows = rows.filter(pc.and_(pc.equal(rows["stage"], stage), pc.equal(rows["scope"], scope)))
    if rows.num_rows == 0:
        return None
    last = rows.sort_by([("committed_at", "descending")]).slice(0, 1).to_pylist()[0]
    return Committed(last["stage_run_id"], dict(last["versions"]), dict(last["inputs"]), last["config_hash"])


class StageRun:
    """One run of a stage writing ``tables`` of ``layer`` (module docstring). ``scope`` names
    the part of the tables it replaces (``profile=serving``; "" for whole tables); ``inputs``
    fingerprints what it read (input table versions, file sizes and times)."""

    def __init__(
        self,
        spark: SparkSession,
        cfg: Config,
        layer: str,
        stage: str,
        tables: Sequence[str],
        scope: str = "",
        inputs: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> None:
        self.spark, self.cfg, self.layer, self.stage, self.scope = spark, cfg, layer, stage, scope
        self.run_id = run_id or runs.new_run_id(stage)
        self.inputs = {str(k): str(v) for k, v in (inputs or {}).items()}
        self.paths = {name: lake.table_path(cfg.lake.root, layer, name) for name in tables}
        self.since = {name: lake.version(p) if lake.exists(p) else -1 for name, p in self.paths.items()}
        for path in self.paths.values():  # a killed run's leftovers, even if this run is a no-op
            if lake_log.is_local(path):
                lake_files.remove_dead_staging(lake_log.local_path(path).rstrip("/"))
        self._pending: dict[str, lake.PendingWrite] = {}

    def __enter__(self) -> StageRun:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.discard()

    def unchanged(self) -> str | None:
        """The no-op message when the last committed run of this stage and scope had the same
        inputs and config and its tables are still what readers see (None otherwise, and
        always with ``--force``)."""
        if runs.flags().force:
            return None
        last = last_committed(self.cfg.lake.root, self.layer, self.stage, self.scope)
        if last is None or last.inputs != self.inputs or last.config_hash != self.cfg.digest():
            return None
        for name, path in self.paths.items():
            if name not in last.versions or not lake.exists(path):
                return None
            if lake.committed_version(path) != last.versions[name]:
                return None
        return f"nothing to do: inputs and config unchanged since run {last.run_id} (--force rebuilds)"

    def prepare(self, name: str, df: DataFrame, **write: Any) -> None:
        """Prepare the write of table ``name`` (:func:`lake.prepare` keywords); not visible."""
        metadata = {lake.STAGE_RUN_KEY: self.run_id, "stage": self.stage}
        self._pending[name] = lake.prepare(
            self.spark, df, self.paths[name], metadata=metadata, since=self.since[name], **write
        )
        kill_point(f"{self.stage}:staged:{name}")

    def commit(self) -> dict[str, int]:
        """Commit the staged tables in order, then the run's ``_commits`` row; return
        ``{table: version}``. Vacuums the tables when ``lake.vacuum_after_write``."""
        versions = {}
        for name in list(self._pending):
            versions[name] = self._pending.pop(name).commit()
            kill_point(f"{self.stage}:committed:{name}")
        row = (
            self.run_id,
            self.stage,
            self.scope,
            versions,
            self.inputs,
            self.cfg.digest(),
            datetime.now(UTC),
        )
        path = lake.table_path(self.cfg.lake.root, self.layer, lake.COMMITS_TABLE)
        lake.write(self.spark, self.spark.createDataFrame([row], schemas.STAGE_COMMITS), path, mode="append")
        kill_point(f"{self.stage}:recorded")
        log.info("%s: run %s committed %s", self.stage, self.run_id, versions)
        if self.cfg.lake.vacuum_after_write:
            for name in versions:
                removed = vacuum_table(self.paths[name], self.cfg.lake.retention_hours, dry_run=False)
                log.info("vacuum %s: %d files removed", self.paths[name], len(removed))
        return versions

    def discard(self) -> None:
        """Drop the staged files of every write not committed yet."""
        for pending in self._pending.values():
            pending.discard()
        self._pending.clear()
