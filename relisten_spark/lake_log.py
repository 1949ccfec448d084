"""What a table's Delta log says beyond its files: the version readers see, and whether a
commit by another run conflicts with a write.

* A commit whose custom metadata carries ``stage_run_id`` was written by a stage run
  (:mod:`~relisten_spark.commits`); readers see it only once that run has a row in its layer's
  ``_commits`` table. :func:`committed_version` is the newest version written by a plain write or
  by such a committed run, so a killed stage never shows half its tables.
* :func:`check_conflict`: optimistic concurrency. A write that read version ``since`` conflicts
  with a later commit that touched what it replaces (any commit for a whole-table overwrite,
  files of the same partitions for a ``replace_where`` write; appends never conflict).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from relisten_spark.errors import LakeError

STAGE_RUN_KEY = "stage_run_id"
COMMITS_TABLE = "_commits"


class WriteConflictError(LakeError):
    """Another run committed to the same table (or partition) after this run read it."""


def local_path(path: str) -> str:
    """``path`` without a ``file:`` scheme."""
    return path[len("file://") :] if path.startswith("file://") else path.removeprefix("file:")


def is_local(path: str) -> bool:
    """True for a local or mounted path (no remote scheme)."""
    root = local_path(path)
    return "://" not in root and not root.startswith(("dbfs:", "s3:", "abfss:", "gs:", "hdfs:"))


def partition_str(value: Any) -> str | None:
    """A partition value as the Delta log writes it (booleans lower case, None for null)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def commits_path(path: str) -> str:
    """The ``_commits`` table of the layer holding the table at ``path``.

    >>> commits_path("lakehouse/bronze/events")
    'lakehouse/bronze/_commits'
    """
    return f"{path.rstrip('/').rsplit('/', 1)[0]}/{COMMITS_TABLE}"


def _table(path: str) -> DeltaTable | None:
    try:
        return DeltaTable(path)
    except TableNotFoundError:
        return None


def stage_run_of(entry: Mapping[str, Any]) -> str | None:
    """The ``stage_run_id`` of a history entry (deltalake custom metadata or delta-spark's
    ``userMetadata`` JSON); None for a plain write."""
    if entry.get(STAGE_RUN_KEY):
        return str(entry[STAGE_RUN_KEY])
    raw = entry.get("userMetadata")
    if isinstance(raw, str) and raw.startswith("{"):
        value = json.loads(raw).get(STAGE_RUN_KEY)
        return str(value) if value else None
    return None


def committed_runs(path: str) -> set[str]:
    """The stage run ids recorded in the ``_commits`` table of ``path``'s layer."""
    manifest = _table(commits_path(path))
    if manifest is None:
        return set()
    ids = manifest.to_pyarrow_table(columns=[STAGE_RUN_KEY]).column(STAGE_RUN_KEY)
    return {str(v) for v in ids.to_pylist()}


def committed_version(path: str) -> int:
    """The version readers see: the newest one written by a plain write or by a stage run
    recorded in the layer's ``_commits`` (a killed stage's versions are skipped)."""
    table = _table(path)
    if table is None:
        raise LakeError(f"no Delta table at {path}")
    newest = table.history(1)
    if newest and stage_run_of(newest[0]) is None:
        return int(newest[0]["version"])
    committed = committed_runs(path)
    uncommitted: str | None = None
    for entry in table.history():
        run_id = stage_run_of(entry)
        if run_id is None or run_id in committed:
            return int(entry["version"])
        uncommitted = uncommitted or run_id
    raise LakeError(
        f"{path} has no committed version: stage run {uncommitted} wrote it but never finished; "
        "rerun that stage"
    )


def check_conflict(path: str, since: int, appends: bool, replace_where: Mapping[str, Any] | None) -> None:
    """Raise :class:`WriteConflictError` if a commit after version ``since`` touched what this
    write replaces (module docstring); ``appends``: the write only adds rows."""
    table = _table(path)
    if table is None or (appends and not replace_where):
        return
    for at in range(since + 1, table.version() + 1):
        info, touched = _log_entry(path, table, at)
        if touched is None or not replace_where or any(_in_partition(pv, replace_where) for pv in touched):
            who = stage_run_of(info) or str(info.get("operation", "another writer"))
            part = f" partition {dict(replace_where)}" if replace_where else ""
            raise WriteConflictError(
                f"write conflict on {path}{part}: run {who} committed version {at} after this run "
                f"read version {since}; this run's write was not committed: rerun it"
            )


def _log_entry(path: str, table: DeltaTable, at: int) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """The commit info of version ``at`` and the partition values of its added and removed
    files (None when they cannot be read: the commit then counts as touching everything)."""
    if not is_local(path):
        entries = [e for e in table.history() if e.get("version") == at]
        info = entries[0] if entries else {}
        params = info.get("operationParameters") or {}
        return info, ([] if str(params.get("mode", "")).lower() == "append" else None)
    log_file = os.path.join(local_path(path), "_delta_log", f"{at:020d}.json")
    try:
        with open(log_file, encoding="utf-8") as handle:
            actions = [json.loads(line) for line in handle if line.strip()]
    except OSError:
        return {}, None
    info = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
    touched = [
        a[kind].get("partitionValues") or {} for a in actions for kind in ("add", "remove") if kind in a
    ]
    return info, touched


def _in_partition(values: Mapping[str, Any], replace_where: Mapping[str, Any]) -> bool:
    return all(values.get(k) == partition_str(v) for k, v in replace_where.items())
