"""The files behind a Delta write without the Delta Spark extension: Spark writes Parquet into a
staging folder inside the table (``<table>/_staging/<write id>/``); :class:`Staged` knows each
file's Hive-style place, its size and Delta statistics; :meth:`Staged.place` moves them there
just before the commit. A write id names its host and process, so the next write of the table
removes the staging folders of dead writers (:func:`remove_dead_staging`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake.transaction import AddAction
from pyspark.sql import DataFrame

from relisten_spark.errors import LakeError

STAGING = "_staging"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_MAX_STAT_CHARS = 32
# a staging folder of another host (or of an older naming) is dead once this old
_FOREIGN_STAGING_HOURS = 24.0
# a staged file: (its path in staging, its path relative to the table, its partition values)
FileEntry = tuple[str, str, dict[str, str | None]]


def _host() -> str:
    return socket.gethostname().replace("-", "_") or "host"


def new_write_id() -> str:
    """``<UTC time>-<host>-<pid>-<8 hex>``: sortable, and says which process writes it."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_dead(folder: str, name: str) -> bool:
    """A staging folder of this host whose process is gone, or a foreign one older than a day."""
    parts = name.split("-")
    if len(parts) == 4 and parts[1] == _host() and parts[2].isdigit():
        return int(parts[2]) != os.getpid() and not _pid_alive(int(parts[2]))
    try:
        age_h = (time.time() - os.path.getmtime(os.path.join(folder, name))) / 3600
    except OSError:
        return False
    return age_h > _FOREIGN_STAGING_HOURS


def dead_staging(root: str) -> list[str]:
    """The names of the staging folders of dead writers under ``<root>/_staging``."""
    folder = os.path.join(root, STAGING)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [name for name in names if _is_dead(folder, name)]


def remove_dead_staging(root: str) -> list[str]:
    """Remove the staging folders of dead writers under ``<root>/_staging``; return their names."""
    folder = os.path.join(root, STAGING)
    dead = dead_staging(root)
    for name in dead:
        shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    remove_if_empty(folder)
    return dead


def remove_if_empty(folder: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(folder)


@dataclass
class Staged:
    """Parquet files written under ``<root>/_staging/<write_id>``, not yet part of the table.
    ``files``: (file in staging, path relative to the table, partition values)."""

    root: str
    write_id: str
    files: list[FileEntry]
    placed: list[AddAction] = field(default_factory=list)

    @property
    def folder(self) -> str:
        return os.path.join(self.root, STAGING, self.write_id)

    def place(self) -> list[AddAction]:
        """Move the files to their Hive-style place; return their add actions (idempotent)."""
        if self.placed:
            return self.placed
        now_ms = int(time.time() * 1000)
        for source, target_rel, partition_values in self.files:
            target = os.path.join(self.root, target_rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            stats = file_stats(source)
            os.replace(source, target)
            self.placed.append(
                AddAction(
                    path=target_rel.replace(os.sep, "/"),
                    size=os.path.getsize(target),
                    partition_values=partition_values,
                    modification_time=now_ms,
                    data_change=True,
                    stats=stats,
                )
            )
        return self.placed

    def drop(self) -> None:
        """Remove the staging folder (and ``_staging`` when it is left empty)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        remove_if_empty(os.path.join(self.root, STAGING))


def stage(df: DataFrame, root: str, partition_by: list[str], options: Mapping[str, str]) -> Staged:
    """Write ``df`` as Parquet under ``<root>/_staging/<write id>``; nothing is committed or moved.
    A failed Spark write removes its staging folder."""
    write_id = new_write_id()
    staged = Staged(root, write_id, [])
    try:
        writer = df.write.mode("error").options(**options)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(staged.folder)
        staged.files = _listing(staged.folder, write_id, partition_by)
    except BaseException:
        staged.drop()
        raise
    return staged


def _listing(folder: str, write_id: str, partition_by: list[str]) -> list[FileEntry]:
    files = []
    for sub, _dirs, names in os.walk(folder):
        rel_dir = os.path.relpath(sub, folder)
        if "_temporary" in rel_dir.split(os.sep):
            continue
        parquet = sorted(name for name in names if name.endswith(".parquet"))
        if not parquet:
            continue
        values = partition_values(rel_dir, partition_by)
        for name in parquet:
            unique = f"{write_id}-{name}"
            target_rel = unique if rel_dir == "." else os.path.join(rel_dir, unique)
            files.append((os.path.join(sub, name), target_rel, values))
    return files


def partition_values(rel_dir: str, partition_by: list[str]) -> dict[str, str | None]:
    """``{column: value}`` of a Hive-style folder (``day=d1/...``); None for the null partition."""
    if not partition_by:
        return {}
    values: dict[str, str | None] = {}
    for part in rel_dir.split(os.sep):
        key, _, raw = part.partition("=")
        values[unquote(key)] = None if raw == NULL_PARTITION else unquote(raw)
    if set(values) != set(partition_by):
        raise LakeError(f"unexpected partition folder {rel_dir} for columns {partition_by}")
    return values


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and value != value:  # NaN has no place in stats
        return None
    if isinstance(value, bytes):
        return None
    if isinstance(value, str) and len(value) > _MAX_STAT_CHARS:
        return None  # a truncated string is not a valid bound; leave it out
    return value


def file_stats(file: str) -> str:
    """Delta ``stats`` JSON from the Parquet footer: numRecords, min, max, nullCount."""
    meta = pq.read_metadata(file)
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    arrow_schema = meta.schema.to_arrow_schema()
    for ci in range(meta.num_columns):
        column = meta.schema.column(ci)
        name = column.path
        if "." in name or name not in arrow_schema.names:
            continue  # nested columns carry no top-level statistics
        lo = hi = None
        null_count = 0
        complete = True
        for ri in range(meta.num_row_groups):
            stats = meta.row_group(ri).column(ci).statistics
            if stats is None:
                complete = False
                break
            null_count += stats.null_count or 0
            if stats.has_min_max:
                vmin, vmax = _json_value(stats.min), _json_value(stats.max)
                if vmin is None or vmax is None:
                    continue
                lo = vmin if lo is None else min(lo, vmin)
                hi = vmax if hi is None else max(hi, vmax)
        if not complete:
            continue
        nulls[name] = null_count
        if lo is not None and not pa.types.is_boolean(arrow_schema.field(name).type):
            mins[name], maxs[name] = lo, hi
    return json.dumps({"numRecords": meta.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls})
