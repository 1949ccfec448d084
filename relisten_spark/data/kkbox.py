"""KKBOX ingest (``relisten ingest``): the five competition CSV files -> bronze Delta tables.

Reads ``train.csv``, ``test.csv``, ``members.csv``, ``songs.csv`` and ``song_extra_info.csv``
from ``cfg.data.raw_dir`` and writes ``bronze.events``, ``bronze.members``, ``bronze.songs``,
``bronze.song_extra`` and ``bronze.quarantine`` (schemas in :mod:`relisten_spark.schemas`).

KKBOX fields never span lines, so every file is parsed **line by line** in Spark SQL (no
Python on the rows, no multi-line CSV parser):

* a line is split on commas; lines holding a ``"`` are split on commas outside quotes and
  quoted fields are unquoted (``""`` -> ``"``). A trailing ``\\r`` (CRLF files) is dropped and
  a UTF-8 BOM is removed from the header;
* ``song_extra_info.csv`` has one free-text column (``name``): the text before the first comma
  is ``song_id``, after the last comma ``isrc``, everything between is ``name`` (unquoted when
  it is a well-formed quoted field, verbatim otherwise). A standard CSV parser lets one
  unbalanced quote swallow 148 lines of the real file; this rule keeps every song;
* lines made only of commas and blanks (the 35,000 ``,,,,,`` padding rows at the end of
  ``test.csv``) and empty lines are dropped and counted, not quarantined;
* empty fields become nulls; literal ``null`` / ``Unknown`` / ``-`` strings are real
  categories and kept; tabs and non-breaking spaces inside names are kept (features clean
  names later); leading/trailing whitespace of id fields is stripped;
* a line that cannot be parsed goes to ``bronze.quarantine`` with the file name, its 1-based
  physical line number, the raw text and the reason: wrong number of fields (a truncated
  last line included), an unbalanced or stray quote, a non-integer in an integer column, an
  empty id, a target that is not 0/1.

Input that cannot be read as meant stops the job before any table is written, with one line
naming the file: a missing file; a header that is binary, not valid in ``data.encoding``, split
by another delimiter than a comma or missing a required column (extra columns are ignored); a
line whose bytes are invalid in ``data.encoding`` (the first such line is named; ``utf-8`` by
default, ``latin-1`` on request: bytes are never replaced); a file other than ``test.csv``
without data rows, unless ``data.allow_empty``.

Line numbers come from the file order of Spark's text scan, exactly as ``RDD.zipWithIndex``
does it but without moving rows through Python: one cheap job counts the lines of every
scan partition (partitions ordered by their byte offset in the file), and each line's
number is its partition's offset plus its position inside the partition. The same trick
numbers the accepted rows, so ``bronze.events.idx`` is exactly ``0..n_train-1`` for train
rows in file order, then ``n_train..`` for test rows in file order.

Every table is overwritten on each run, so a re-run over the same files gives the same
tables. ``bronze.quarantine`` holds the rejects of the latest run only, stamped with its
``run_id`` (the only column that differs between two runs over the same files).
"""

from __future__ import annotations

import csv
import logging
import operator
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce
from typing import Any, Literal

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from relisten_spark import preflight, schemas
from relisten_spark.commits import StageRun, file_fingerprints
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.runs import new_run_id

log = logging.getLogger(__name__)

Kind = Literal["id", "text", "int", "long", "target"]

# a field that is quoted as a whole, with inner quotes doubled
_QUOTED_FIELD = r'^"(?:[^"]|"")*"$'
# a comma followed by an even number of quotes up to the end of the line (i.e. outside quotes)
_COMMA_OUTSIDE_QUOTES = r',(?=(?:[^"]*+"[^"]*+")*+[^"]*+$)'
_PADDING_CHARS = ", \t"  # a line made only of these is padding (test.csv ends with 35,000 ",,,,,")
_ID_BLANKS = " \t\u00a0"  # stripped from both ends of id and number fields
_POS_BITS = 33  # monotonically_increasing_id = partition index << 33 | position in partition
_JAVA_CHARSETS = {"utf-8": "UTF-8", "latin-1": "ISO-8859-1"}  # data.encoding -> Spark's decode()
_HEADER_CHARS = 65536  # at most this much of line 1 reaches the driver (a binary file has no lines)


@dataclass(frozen=True)
class Field:
    """One CSV column: its header name and how its text becomes a value."""

    name: str
    kind: Kind


@dataclass(frozen=True)
class Source:
    """A raw file: its name, the columns it must have, if any its free-text column, and whether
    it may hold no data rows without ``data.allow_empty``."""

    file: str
    columns: tuple[Field, ...]
    free_text: str | None = None
    may_be_empty: bool = False


def _cols(*spec: tuple[str, Kind]) -> tuple[Field, ...]:
    return tuple(Field(name, kind) for name, kind in spec)


_EVENT_TEXT: tuple[tuple[str, Kind], ...] = (
    ("source_system_tab", "text"),
    ("source_screen_name", "text"),
    ("source_type", "text"),
)
TRAIN = Source("train.csv", _cols(("msno", "id"), ("song_id", "id"), *_EVENT_TEXT, ("target", "target")))
TEST = Source(
    "test.csv", _cols(("id", "int"), ("msno", "id"), ("song_id", "id"), *_EVENT_TEXT), may_be_empty=True
)
MEMBERS = Source(
    "members.csv",
    _cols(
        ("msno", "id"),
        ("city", "int"),
        ("bd", "int"),
        ("gender", "text"),
        ("registered_via", "int"),
        ("registration_init_time", "int"),
        ("expiration_date", "int"),
    ),
)
SONGS = Source(
    "songs.csv",
    _cols(
        ("song_id", "id"),
        ("song_length", "long"),
        ("genre_ids", "text"),
        ("artist_name", "text"),
        ("composer", "text"),
        ("lyricist", "text"),
        ("language", "int"),
    ),
)
SONG_EXTRA = Source(
    "song_extra_info.csv", _cols(("song_id", "id"), ("name", "text"), ("isrc", "text")), free_text="name"
)
SOURCES: dict[str, Source] = {
    "train": TRAIN,
    "test": TEST,
    "members": MEMBERS,
    "songs": SONGS,
    "song_extra": SONG_EXTRA,
}
# the bronze tables ingest writes, in their commit order
OUTPUTS = ("events", "members", "songs", "song_extra", "quarantine")


@dataclass(frozen=True)
class Layout:
    """What the first passes over a file learn: its header and where each scan partition starts."""

    header: tuple[str, ...]
    line_offsets: Mapping[int, int]  # scan partition -> number of lines in earlier partitions
    lines: int


# ---- reading ----------------------------------------------------------------------------


def read_lines(spark: SparkSession, path: str, encoding: str = "utf-8") -> DataFrame:
    """The physical lines of ``path``: ``[value string, _valid_text boolean, _block long]``.

    ``value`` is the line decoded from ``encoding`` (``utf-8`` | ``latin-1``); ``_valid_text``
    is false for a line whose bytes are invalid in it (never replaced: :func:`count_statuses`
    finds the first and the ingest stops). ``_block`` is the byte offset of the file split
    the line was read from. Lines end at ``\\n`` only (a ``\\r`` before it is removed by
    :func:`parse_lines`). A missing file raises :class:`InputError`.
    """
    try:
        text = spark.read.option("lineSep", "\n").text(path)
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc):
            raise InputError(f"input file not found: {path}") from None
        raise
    raw = F.col("value")
    if encoding == "utf-8":  # the text source keeps the bytes as read
        value, valid = raw, F.is_valid_utf8(raw)
    else:
        value, valid = F.decode(raw.cast("binary"), _JAVA_CHARSETS[encoding]), F.lit(True)
    return text.select(
        value.alias("value"), valid.alias("_valid_text"), F.col("_metadata.file_block_start").alias("_block")
    )


def position(lines: DataFrame) -> DataFrame:
    """Add ``_pid`` (the scan partition) and ``_pos`` (the line's position inside it).

    ``lines`` must be the scan plus row-wise projections only (no filter, join or shuffle),
    so that positions count every physical line in the order it was read. Filters put on
    the result stay above these non-deterministic columns (the optimiser never pushes a
    filter through them), so the parse below runs once per line.
    """
    pid = F.spark_partition_id()
    return lines.select(
        "*",
        pid.alias("_pid"),
        (F.monotonically_increasing_id() - F.shiftleft(pid.cast("long"), _POS_BITS)).alias("_pos"),
    )


def _union(frames: list[DataFrame]) -> DataFrame:
    return reduce(DataFrame.unionByName, frames)


def read_header(lines: DataFrame, path: str, encoding: str = "utf-8") -> tuple[str, ...]:
    """Column names from the first line of ``lines`` (:func:`read_lines`), without a BOM,
    a trailing ``\\r`` or blanks around names. Reads only the start of the first split. An
    empty file, a binary one, a header invalid in ``encoding`` or split by another delimiter
    raise :class:`InputError` naming the file (:func:`preflight.check_header_line`)."""
    first = lines.where(F.col("_block") == 0).select(F.substring("value", 1, _HEADER_CHARS), "_valid_text")
    rows = first.limit(1).collect()
    if not rows:
        raise InputError(f"input file is empty (no header line): {path}")
    line = preflight.check_header_line(path, rows[0][0], rows[0][1], encoding)
    return tuple(name.strip() for name in next(csv.reader([line])))


def layouts(lines: Mapping[str, DataFrame], headers: Mapping[str, tuple[str, ...]]) -> dict[str, Layout]:
    """Where each scan partition of each file starts, in one scan over all the files.

    ``lines`` (:func:`position`) and ``headers`` are keyed alike. Partitions are put in
    file order by the byte offset of their split; only one row per partition reaches the
    driver.
    """
    per_file = [df.select(F.lit(key).alias("_key"), "_pid", "_block") for key, df in lines.items()]
    stats = (
        _union(per_file)
        .groupBy("_key", "_pid")
        .agg(F.count("*").alias("n"), F.min("_block").alias("block"))
        .collect()
    )
    result: dict[str, Layout] = {}
    for key, header in headers.items():
        offsets: dict[int, int] = {}
        total = 0
        for row in sorted((r for r in stats if r["_key"] == key), key=lambda r: r["block"]):
            offsets[row["_pid"]] = total
            total += row["n"]
        result[key] = Layout(header, offsets, total)
    return result


def check_header(source: Source, header: tuple[str, ...], path: str) -> None:
    """Raise :class:`InputError` naming the file and the first required column it lacks."""
    for column in source.columns:
        if column.name not in header:
            raise InputError(f"{path}: missing required column '{column.name}' (header: {','.join(header)})")


def _offset(offsets: Mapping[int, int], pid: Column) -> Column:
    """``offsets[pid]`` as a literal map lookup (one entry per scan partition)."""
    pairs = [F.lit(x) for item in sorted(offsets.items()) for x in item]
    return F.element_at(F.create_map(*pairs).cast(T.MapType(T.IntegerType(), T.LongType())), pid)


def number_lines(positioned: DataFrame, lay: Layout) -> DataFrame:
    """Add ``line_number`` (1-based, file order; the header is line 1) to :func:`position`'s output."""
    return positioned.withColumn("line_number", _offset(lay.line_offsets, F.col("_pid")) + F.col("_pos") + 1)


def _data(numbered: DataFrame, status: str | None = None) -> DataFrame:
    """The lines after the header, optionally only those of one status."""
    keep = F.col("line_number") > 1
    return numbered.where(keep if status is None else keep & (F.col("status") == status))


# ---- parsing ----------------------------------------------------------------------------


def _unquote(field: Column) -> Column:
    inner = field.substr(F.lit(2), F.length(field) - 2)
    return F.when(field.rlike(_QUOTED_FIELD), F.replace(inner, F.lit('""'), F.lit('"'))).otherwise(field)


def _stray(field: Column) -> Column:
    return field.contains('"') & ~field.rlike(_QUOTED_FIELD)


def _count_of(text: Column, char: str) -> Column:
    return F.length(text) - F.length(F.replace(text, F.lit(char), F.lit("")))


def _field(position: int) -> Column:
    """Field ``position`` (0-based) of ``_raw_fields`` as written (null when the line is short)."""
    return F.try_element_at(F.col("_raw_fields"), F.lit(position + 1))


def _split(lines: DataFrame, n: int, free: int | None) -> DataFrame:
    """``_line`` -> ``_has_quote``, ``_raw_fields`` (fields as written) and ``_problem``.

    Without a free-text column, lines without a quote are split on every comma, others on
    commas outside quotes. With a free-text column at position ``free``, the ``free`` fields
    before it end at the first commas, the ``n - free - 1`` fields after it start at the last
    commas, the free text is everything between; lines with fewer than ``n - 1`` commas are
    split on every comma (and rejected for their field count). No higher-order functions: the
    fields are checked one by one, so the whole parse stays in generated code.
    """
    line = F.col("_line")
    staged = lines.withColumn("_has_quote", line.contains('"'))
    if free is None:
        staged = staged.withColumn(
            "_raw_fields",
            F.when(F.col("_has_quote"), F.split(line, _COMMA_OUTSIDE_QUOTES, -1)).otherwise(
                F.split(line, ",", -1)
            ),
        )
    else:
        after = n - free - 1
        staged = staged.select(
            "*",
            (F.substring_index(line, ",", free) if free else F.lit("")).alias("_head"),
            (F.substring_index(line, ",", -after) if after else F.lit("")).alias("_tail"),
        )
        head, tail = F.col("_head"), F.col("_tail")
        start = F.length(head) + 1 + (1 if free else 0)
        width = F.length(line) - F.length(head) - F.length(tail) - (1 if free else 0) - (1 if after else 0)
        parts = [F.split(head, ",", -1)] if free else []
        parts.append(F.array(line.substr(start, width)))
        if after:
            parts.append(F.split(tail, ",", -1))
        staged = staged.withColumn(
            "_raw_fields",
            F.when(_count_of(line, ",") >= n - 1, F.concat(*parts)).otherwise(F.split(line, ",", -1)),
        )
    stray = [_stray(_field(p)) for p in range(n) if p != free]
    problem = F.when(~F.col("_has_quote"), F.lit(None))
    if free is None:
        problem = problem.when(
            _count_of(line, '"') % 2 == 1,
            F.lit("unbalanced quote: a quoted field is not closed on this line"),
        )
    if stray:
        problem = problem.when(reduce(operator.or_, stray), F.lit("stray quote inside an unquoted field"))
    return staged.withColumn("_problem", problem)


def _values(fields: DataFrame, source: Source, header: tuple[str, ...]) -> tuple[DataFrame, list[Column]]:
    """Typed value of every column of ``source`` (named as the column) and the reasons a
    value is rejected (one null-when-accepted column per check)."""
    texts, values, reasons = [], [], []
    for column in source.columns:
        name = column.name
        raw = _field(header.index(name))
        text = F.when(F.col("_has_quote"), _unquote(raw)).otherwise(raw)
        if column.kind != "text":
            text = F.btrim(text, F.lit(_ID_BLANKS))
        texts.append(F.when(text != "", text).alias(f"_text_{name}"))
        present = F.col(f"_text_{name}")
        if column.kind in ("text", "id"):
            values.append(present.alias(name))
        else:
            values.append(present.try_cast("long" if column.kind == "long" else "int").alias(name))
        if column.kind in ("id", "target"):
            reasons.append(F.when(present.isNull(), F.lit(f"empty {name}")))
        if column.kind in ("int", "long", "target"):
            reasons.append(
                F.when(
                    present.isNotNull() & F.col(name).isNull(),
                    F.concat(F.lit(f"{name} is not an integer: '"), present, F.lit("'")),
                )
            )
        if column.kind == "target":
            reasons.append(
                F.when(
                    ~F.col(name).isin(0, 1), F.concat(F.lit(f"{name} is not 0 or 1: '"), present, F.lit("'"))
                )
            )
    return fields.select("*", *texts).select("*", *values), reasons


def parse_lines(numbered: DataFrame, source: Source, header: tuple[str, ...]) -> DataFrame:
    """Parse the lines of one file, line by line.

    In: ``[value, ...]`` (:func:`read_lines`). Out: the input columns plus
    ``raw`` (the line without its terminator), ``status`` (``ok`` | ``padding`` | ``bad``),
    ``reason`` (why a ``bad`` line was rejected, else null) and one typed column per column
    of ``source`` (string for id/text, int, long for ``long`` columns), plus working columns
    prefixed ``_``. Each step is its own projection so that no expression is computed twice.
    """
    n = len(header)
    value = F.col("value")
    lines = numbered.withColumn(
        "_line", F.when(value.endswith("\r"), value.substr(F.lit(1), F.length(value) - 1)).otherwise(value)
    )
    free = header.index(source.free_text) if source.free_text is not None else None
    fields = _split(lines, n, free).withColumn("_n_fields", F.size("_raw_fields"))
    count_problem = F.when(
        F.col("_n_fields") != n,
        F.concat(F.lit(f"expected {n} fields, found "), F.col("_n_fields").cast("string")),
    )
    typed, reasons = _values(fields, source, header)
    typed = typed.withColumn("_reason", F.coalesce(F.col("_problem"), count_problem, *reasons))
    status = (
        F.when(F.btrim("_line", F.lit(_PADDING_CHARS)) == "", F.lit("padding"))
        .when(F.col("_reason").isNotNull(), F.lit("bad"))
        .otherwise(F.lit("ok"))
    )
    return (
        typed.withColumn("status", status)
        .withColumn("reason", F.when(F.col("status") == "bad", F.col("_reason")))
        .withColumn("raw", F.col("_line"))
    )


# ---- counting and numbering ----------------------------------------------------------


@dataclass(frozen=True)
class Parsed:
    """A parsed file (:func:`parse_lines`) with its line counts by status."""

    source: Source
    frame: DataFrame
    ok_offsets: Mapping[int, int]  # scan partition -> accepted rows in earlier partitions
    counts: Mapping[str, int]  # status -> lines
    first_invalid: int | None = None  # the first data line whose bytes are invalid in the encoding


def count_statuses(
    frames: Mapping[str, DataFrame], sources: Mapping[str, Source], lays: Mapping[str, Layout]
) -> dict[str, Parsed]:
    """Count every file's data lines by scan partition and status, in one scan over all files.

    ``frames`` (:func:`parse_lines` + :func:`position` + :func:`number_lines`), ``sources``
    and ``lays`` are keyed alike. Only one row per partition and status reaches the driver.
    The same scan finds each file's first line whose bytes are invalid in its encoding.
    """
    per_file = [
        _data(df).select(F.lit(key).alias("_key"), "_pid", "status", "line_number", "_valid_text")
        for key, df in frames.items()
    ]
    invalid = F.min(F.when(~F.col("_valid_text"), F.col("line_number"))).alias("invalid")
    rows = (
        _union(per_file).groupBy("_key", "_pid", "status").agg(F.count("*").alias("count"), invalid).collect()
    )
    result: dict[str, Parsed] = {}
    for key, frame in frames.items():
        counts = {"ok": 0, "padding": 0, "bad": 0}
        ok_per_pid: dict[int, int] = {}
        invalid_lines = [row["invalid"] for row in rows if row["_key"] == key and row["invalid"] is not None]
        for row in rows:
            if row["_key"] == key:
                counts[row["status"]] += row["count"]
                if row["status"] == "ok":
                    ok_per_pid[row["_pid"]] = row["count"]
        line_offsets = lays[key].line_offsets
        ok_offsets: dict[int, int] = {}
        total = 0
        for pid in sorted(line_offsets, key=line_offsets.__getitem__):
            ok_offsets[pid] = total
            total += ok_per_pid.get(pid, 0)
        result[key] = Parsed(sources[key], frame, ok_offsets, counts, min(invalid_lines, default=None))
        log.info(
            "%s: %d lines, %d rows, %d quarantined, %d padding rows dropped",
            sources[key].file,
            lays[key].lines,
            counts["ok"],
            counts["bad"],
            counts["padding"],
        )
    return result


def accepted(parsed: Parsed, first_index: int = 0) -> DataFrame:
    """Accepted rows with ``row_index``: ``first_index`` + their rank in file order."""
    ok = _data(parsed.frame, "ok")
    rank = F.monotonically_increasing_id() - F.shiftleft(F.col("_pid").cast("long"), _POS_BITS)
    return ok.withColumn("row_index", F.lit(first_index) + _offset(parsed.ok_offsets, F.col("_pid")) + rank)


def rejected(parsed: Parsed, run_id: str) -> DataFrame:
    """Quarantine rows of one file: ``[file, line_number, raw, reason, run_id]``."""
    bad = _data(parsed.frame, "bad")
    return bad.select(
        F.lit(parsed.source.file).alias("file"),
        F.col("line_number").cast("long"),
        "raw",
        "reason",
        F.lit(run_id).alias("run_id"),
    )


def check_rows(parsed: Parsed, path: str, encoding: str, allow_empty: bool) -> None:
    """Raise :class:`InputError` naming ``path`` when a line's bytes are invalid in ``encoding``
    (the first such line) or when a file that must have rows has none (unless ``allow_empty``)."""
    if parsed.first_invalid is not None:
        raise InputError(preflight.invalid_text(path, parsed.first_invalid, encoding))
    if parsed.counts["ok"] or parsed.source.may_be_empty or allow_empty:
        return
    bad = parsed.counts["bad"]
    what = f"all {bad} data lines quarantined" if bad else "header only"
    raise InputError(f"{path}: no data rows ({what}); set data.allow_empty=true if that is intended")


def _conform(df: DataFrame, schema: T.StructType) -> DataFrame:
    """The columns of ``schema``, in its order, with its types and nullability (a literal such
    as ``split`` would otherwise be declared NOT NULL in the Delta schema)."""
    columns = []
    for field in schema.fields:
        column = F.col(field.name).cast(field.dataType)
        if field.nullable:
            column = F.when(column.isNotNull(), column)
        columns.append(column.alias(field.name))
    return df.select(*columns)


def events_frame(train: Parsed, test: Parsed) -> DataFrame:
    """bronze.events: train rows (``idx`` 0..n_train-1 in file order) then test rows."""
    train_rows = accepted(train).select(F.col("row_index").alias("idx"), "*", F.lit("train").alias("split"))
    test_rows = accepted(test, first_index=train.counts["ok"]).select(
        F.col("row_index").alias("idx"),
        "*",
        F.lit(None).cast("int").alias("target"),
        F.lit("test").alias("split"),
    )
    return _conform(train_rows, schemas.EVENTS).unionByName(_conform(test_rows, schemas.EVENTS))


# ---- the stage --------------------------------------------------------------------------


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """Ingest the KKBOX CSV files of ``cfg.data.raw_dir`` into the bronze tables.

    Every file and header is checked before anything is written. Jobs: one tiny job per
    header, one scan counting lines per partition, one parse counting statuses (all files
    together), then one write per table; rows never reach the driver. ``test.csv``'s ``id``
    must be an integer, but ``idx`` follows file order (the real ids are 0..n-1 in file order).

    Returns ``run_id``; ``rows`` per table; ``train_rows`` and ``test_rows``; ``quarantined``
    lines per file; ``padding_rows_dropped`` per file (comma-only lines, dropped and not
    quarantined); the new table ``versions``.
    """
    started = time.perf_counter()
    run_id = new_run_id("ingest")
    paths = {name: f"{cfg.data.raw_dir.rstrip('/')}/{source.file}" for name, source in SOURCES.items()}
    out = StageRun(spark, cfg, "bronze", "ingest", OUTPUTS, inputs=file_fingerprints(paths), run_id=run_id)
    skipped = out.unchanged()
    if skipped:
        log.info("ingest: %s", skipped)
        return {"run_id": run_id, "skipped": skipped}
    encoding = cfg.data.encoding
    lines = {name: read_lines(spark, path, encoding) for name, path in paths.items()}
    headers = {name: read_header(lines[name], path, encoding) for name, path in paths.items()}
    for name, source in SOURCES.items():
        check_header(source, headers[name], paths[name])
    positioned = {
        name: position(parse_lines(lines[name], source, headers[name])) for name, source in SOURCES.items()
    }
    lays = layouts(positioned, headers)
    numbered = {name: number_lines(positioned[name], lays[name]) for name in SOURCES}
    parsed = count_statuses(numbered, SOURCES, lays)
    for name, p in parsed.items():
        check_rows(p, paths[name], encoding, cfg.data.allow_empty)

    outputs = {
        "events": events_frame(parsed["train"], parsed["test"]),
        "members": _conform(accepted(parsed["members"]), schemas.MEMBERS),
        "songs": _conform(accepted(parsed["songs"]), schemas.SONGS),
        "song_extra": _conform(accepted(parsed["song_extra"]), schemas.SONG_EXTRA),
    }
    bad = [rejected(p, run_id) for p in parsed.values() if p.counts["bad"]]
    quarantine = _union(bad) if bad else spark.createDataFrame([], schemas.QUARANTINE)
    outputs["quarantine"] = _conform(quarantine, schemas.QUARANTINE)
    with out:  # every table staged, then committed together (relisten_spark.commits)
        for table, df in outputs.items():
            out.prepare(table, df)
        versions = out.commit()

    ok = {name: p.counts["ok"] for name, p in parsed.items()}
    quarantined = {p.source.file: p.counts["bad"] for p in parsed.values()}
    summary: dict[str, Any] = {
        "run_id": run_id,
        "rows": {
            "events": ok["train"] + ok["test"],
            "members": ok["members"],
            "songs": ok["songs"],
            "song_extra": ok["song_extra"],
            "quarantine": sum(quarantined.values()),
        },
        "train_rows": ok["train"],
        "test_rows": ok["test"],
        "quarantined": quarantined,
        "padding_rows_dropped": {p.source.file: p.counts["padding"] for p in parsed.values()},
        "versions": versions,
    }
    log.info("ingest done in %.1f s: %s", time.perf_counter() - started, summary["rows"])
    return summary
