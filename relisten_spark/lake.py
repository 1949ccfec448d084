"""Delta tables: write, append, replace a partition, read, version and history.

Two paths give the same tables:

* with the Delta Spark extension on the classpath, Spark's ``format("delta")``;
* without it, Spark writes Parquet files into a staging folder inside the table, the
  driver moves them to their Hive-style place and commits them as one atomic ``deltalake``
  transaction (add actions with size and statistics). Readers see the old version or the
  new one, never a mix; a write that fails before the commit leaves the table untouched.

Reads without the extension go through the table's current file list (never a directory
glob, which would also read files that a later version removed).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import reduce
from typing import Any, Literal
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from relisten_spark.errors import LakeError
from relisten_spark.session import has_delta_extension

log = logging.getLogger(__name__)

WriteMode = Literal["overwrite", "append"]
_STAGING = "_staging"
_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_MAX_STAT_CHARS = 32


def table_path(root: str, layer: str, name: str) -> str:
    """``<root>/<layer>/<name>``, the stable location of a table.

    >>> table_path("lakehouse", "gold", "recs_story")
    'lakehouse/gold/recs_story'
    """
    return f"{root.rstrip('/')}/{layer}/{name}"


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path.removeprefix("file:")


def exists(path: str) -> bool:
    """True when ``path`` holds a Delta table (a ``_delta_log`` with a commit)."""
    try:
        DeltaTable(path)
    except TableNotFoundError:
        return False
    return True


def version(path: str) -> int:
    """Current version number of the table at ``path``."""
    return _open(path).version()


def history(path: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Commit history of the table, newest first."""
    return _open(path).history(limit)


def _open(path: str) -> DeltaTable:
    try:
        return DeltaTable(path)
    except TableNotFoundError:
        raise LakeError(f"no Delta table at {path}") from None


def read(spark: SparkSession, path: str, where: Mapping[str, Any] | None = None) -> DataFrame:
    """Read the current version of a table, optionally pruned to partitions ``where``.

    ``where`` maps partition columns to values (``{"profile": "serving"}``).
    """
    if has_delta_extension(spark):
        df = spark.read.format("delta").load(path)
        for col, value in (where or {}).items():
            df = df.where(df[col] == value)
        return df
    table = _open(path)
    filters = [(k, "=", _partition_str(v)) for k, v in (where or {}).items()] or None
    arrow_schema = pa.schema(table.schema().to_arrow())
    schema = from_arrow_schema(arrow_schema)
    files = table.file_uris(partition_filters=filters)
    if not files:
        return spark.createDataFrame([], schema)
    base = table.table_uri.rstrip("/")
    return spark.read.schema(schema).option("basePath", base).parquet(*files).select(*schema.fieldNames())


def file_uris(path: str, where: Mapping[str, Any] | None = None) -> list[str]:
    """The Parquet files of the current version (for readers outside Spark, e.g. DDP ranks)."""
    filters = [(k, "=", _partition_str(v)) for k, v in (where or {}).items()] or None
    return _open(path).file_uris(partition_filters=filters)


def write(
    spark: SparkSession,
    df: DataFrame,
    path: str,
    mode: WriteMode = "overwrite",
    partition_by: Sequence[str] | None = None,
    replace_where: Mapping[str, Any] | None = None,
    options: Mapping[str, str] | None = None,
) -> int:
    """Write ``df`` as the next version of the table at ``path``; return that version.

    * ``mode="overwrite"`` replaces the whole table (its schema too);
    * ``mode="append"`` adds rows; the schema must match the table's;
    * ``replace_where={"run_date": "2026-11-23"}`` atomically replaces those partitions
      only (every row of ``df`` must belong to them); the schema must match;
    * ``options``: Parquet writer options (e.g. :func:`wide_table_options`).
    """
    partition_by = list(partition_by or [])
    if replace_where:
        missing = set(replace_where) - set(partition_by)
        if missing:
            raise LakeError(f"replace_where columns {sorted(missing)} are not partition columns of {path}")
    if has_delta_extension(spark):
        return _write_delta_spark(spark, df, path, mode, partition_by, replace_where, options or {})
    return _write_fallback(spark, df, path, mode, partition_by, replace_where, options or {})


def wide_table_options(
    statistics_columns: Sequence[str] = (), dictionary_columns: Sequence[str] = ()
) -> dict[str, str]:
    """Parquet writer options for tables of hundreds of numeric columns: zstd; min/max
    statistics only on ``statistics_columns`` (the keys readers filter on), dictionary encoding
    only on ``dictionary_columns`` (repetitive keys); no page checksums. Parquet-java tries a
    dictionary for every column before it falls back to plain pages: on a 441-column table
    (300k rows, 2 cores) dictionaries made the write 2.7x slower (31 s vs 11 s) for a 1.6x
    smaller file, and statistics plus checksums cost another ~20 %.

    >>> options = wide_table_options(["idx", "msno"], ["msno"])
    >>> options["parquet.enable.dictionary#msno"], options["parquet.column.statistics.enabled#idx"]
    ('true', 'true')
    """
    options = {
        "compression": "zstd",
        "parquet.enable.dictionary": "false",
        "parquet.column.statistics.enabled": "false",
        "parquet.page.write-checksum.enabled": "false",
    }
    options.update({f"parquet.column.statistics.enabled#{c}": "true" for c in statistics_columns})
    options.update({f"parquet.enable.dictionary#{c}": "true" for c in dictionary_columns})
    return options


def _write_delta_spark(
    spark: SparkSession,
    df: DataFrame,
    path: str,
    mode: WriteMode,
    partition_by: list[str],
    replace_where: Mapping[str, Any] | None,
    options: Mapping[str, str],
) -> int:
    writer = df.write.format("delta").mode(mode).options(**options)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if replace_where:
        predicate = " AND ".join(f"`{k}` = '{_partition_str(v)}'" for k, v in replace_where.items())
        writer = writer.mode("overwrite").option("replaceWhere", predicate)
    elif mode == "overwrite":
        writer = writer.option("overwriteSchema", "true")
    writer.save(path)
    return version(path)


def _check_schema(existing: T.StructType, new: T.StructType, path: str) -> None:
    old_fields = {f.name: f.dataType for f in existing.fields}
    new_fields = {f.name: f.dataType for f in new.fields}
    if old_fields == new_fields:
        return
    missing = sorted(set(old_fields) - set(new_fields))
    extra = sorted(set(new_fields) - set(old_fields))
    changed = sorted(k for k in set(old_fields) & set(new_fields) if old_fields[k] != new_fields[k])
    parts = []
    if missing:
        parts.append(f"missing columns {missing}")
    if extra:
        parts.append(f"unexpected columns {extra}")
    if changed:
        parts.append(
            "changed types "
            + ", ".join(
                f"{k}: {old_fields[k].simpleString()} -> {new_fields[k].simpleString()}" for k in changed
            )
        )
    raise LakeError(f"schema mismatch writing {path}: " + "; ".join(parts))


def _write_fallback(
    spark: SparkSession,
    df: DataFrame,
    path: str,
    mode: WriteMode,
    partition_by: list[str],
    replace_where: Mapping[str, Any] | None,
    options: Mapping[str, str],
) -> int:
    """Spark writes Parquet into a staging folder, the files move into place, one ``deltalake``
    commit makes them the next version."""
    root = _local_root(path)
    table = DeltaTable(root) if exists(root) else None
    if table is not None and (mode == "append" or replace_where):
        _check_schema(from_arrow_schema(pa.schema(table.schema().to_arrow())), df.schema, path)
    if replace_where and table is None:
        replace_where = None  # the first write of a partitioned table simply creates it
        mode = "overwrite"
    if replace_where:
        df = _guard_partition(df, replace_where)
    actions = _stage_files(df, root, partition_by, options)
    _commit(root, table, actions, to_arrow_schema(df.schema), mode, partition_by, replace_where)
    new_version = version(root)
    log.info(
        "wrote %s version %d (%d files, mode=%s%s)",
        path,
        new_version,
        len(actions),
        mode,
        f", replace_where={dict(replace_where)}" if replace_where else "",
    )
    return new_version


def _local_root(path: str) -> str:
    """The table folder of ``path``; remote storage needs the Delta Spark extension."""
    root = _local(path).rstrip("/")
    if "://" in root or root.startswith(("dbfs:", "s3:", "abfss:", "gs:", "hdfs:")):
        raise LakeError(
            f"cannot write {path}: without the Delta Spark extension tables must live on a local or "
            "mounted path (add delta-spark to the session for remote storage)"
        )
    return root


def _stage_files(
    df: DataFrame, root: str, partition_by: list[str], options: Mapping[str, str]
) -> list[AddAction]:
    """Write ``df`` as Parquet under ``<root>/_staging/<write id>``, move the files to their
    Hive-style place under ``root`` and return their add actions (not committed yet)."""
    write_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    staging = os.path.join(root, _STAGING, write_id)
    try:
        writer = df.write.mode("error").options(**options)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(staging)
        return _place_files(staging, root, write_id, partition_by)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_if_empty(os.path.join(root, _STAGING))


def _commit(
    root: str,
    table: DeltaTable | None,
    actions: list[AddAction],
    arrow_schema: pa.Schema,
    mode: WriteMode,
    partition_by: list[str],
    replace_where: Mapping[str, Any] | None,
) -> None:
    """Commit ``actions`` as one transaction: create or overwrite the table, replace the
    ``replace_where`` partitions, or append."""
    if table is None or (mode == "overwrite" and not replace_where):
        create_table_with_add_actions(
            root,
            _delta_schema(arrow_schema),
            actions,
            mode="error" if table is None else "overwrite",
            partition_by=partition_by or None,
        )
        return
    changes: list[AddAction | RemoveAction] = list(actions)
    if replace_where:
        filters = [(k, "=", _partition_str(v)) for k, v in replace_where.items()]
        table.create_write_transaction(
            changes,
            mode="overwrite",
            schema=arrow_schema,
            partition_by=partition_by or None,
            partition_filters=filters,
        )
    else:
        table.create_write_transaction(
            changes, mode="append", schema=arrow_schema, partition_by=partition_by or None
        )


def _delta_schema(arrow_schema: pa.Schema) -> Any:
    from deltalake import Schema

    return Schema.from_arrow(arrow_schema)


def _guard_partition(df: DataFrame, replace_where: Mapping[str, Any]) -> DataFrame:
    """Fail the write if a row falls outside the partitions being replaced."""
    from pyspark.sql import functions as F

    terms = [F.col(col).cast("string") == F.lit(_partition_str(v)) for col, v in replace_where.items()]
    cond = reduce(lambda a, b: a & b, terms)
    message = f"row outside replace_where {dict(replace_where)}"
    guarded = next(iter(replace_where))  # the guard rides on a written column, so it is never pruned
    return df.withColumn(guarded, F.when(cond, F.col(guarded)).otherwise(F.raise_error(F.lit(message))))


def _partition_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _remove_if_empty(folder: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(folder)


def _place_files(staging: str, root: str, write_id: str, partition_by: list[str]) -> list[AddAction]:
    """Move Spark's Parquet files from ``staging`` to their Hive-style place under ``root``."""
    actions: list[AddAction] = []
    now_ms = int(time.time() * 1000)
    for folder, _dirs, files in os.walk(staging):
        rel_dir = os.path.relpath(folder, staging)
        parquet = sorted(name for name in files if name.endswith(".parquet"))
        if not parquet:
            continue
        partition_values = _partition_values(rel_dir, partition_by)
        for name in parquet:
            unique = f"{write_id}-{name}"
            target_rel = unique if rel_dir == "." else os.path.join(rel_dir, unique)
            target = os.path.join(root, target_rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(folder, name), target)
            actions.append(
                AddAction(
                    path=target_rel.replace(os.sep, "/"),
                    size=os.path.getsize(target),
                    partition_values=partition_values,
                    modification_time=now_ms,
                    data_change=True,
                    stats=_file_stats(target),
                )
            )
    return actions


def _partition_values(rel_dir: str, partition_by: list[str]) -> dict[str, str | None]:
    if not partition_by:
        return {}
    values: dict[str, str | None] = {}
    for part in rel_dir.split(os.sep):
        key, _, raw = part.partition("=")
        values[unquote(key)] = None if raw == _NULL_PARTITION else unquote(raw)
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


def _file_stats(file: str) -> str:
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
