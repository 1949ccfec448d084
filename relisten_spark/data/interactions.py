"""The generic interactions source (``data.source: interactions``): a user-item log -> bronze.

``data.interactions.path`` is one text file of interactions, one per line: ``user, item[,
timestamp]`` (more columns are ignored). Fields are separated by tabs, commas or runs of blanks
(``data.interactions.delimiter``; ``auto`` looks at the first line: a tab, else a comma, else
blanks). With ``header: true`` the first line names the columns; a name may carry a RecBole
type suffix (``user_id:token``), which is dropped, and the columns are found by name:

* user: ``user_id``, ``user``, ``msno``; item: ``item_id``, ``item``, ``song_id``;
* timestamp (optional): ``timestamp``, ``time``, ``ts`` (a number).

Without a header the columns are user, item and, where present, timestamp, in that order. The
clock is the timestamp, ties (and every row without a timestamp column) broken by the line
order; ``bronze.events.idx`` numbers the rows 0..n-1 in that order, all of them ``split =
train`` with a null ``target`` and null source columns. A line with too few fields, an empty user
or item, or a timestamp that is not a number goes to ``bronze.quarantine`` with its reason; blank
lines are skipped.

``data.interactions.items_path`` (optional) is an item metadata file in the same format:
``item`` (``item_id``, ``item``, ``song_id``), then any of ``artist`` (``artist_name``,
``artist_id``), ``genre`` (``genre``, ``genres``, ``genre_ids``, ``class``: tokens separated by
``|`` or blanks; they become ``genre_ids`` joined by ``|``), ``language`` (``language``,
``lang``: an integer) and ``name`` (``name``, ``title``, ``movie_title``). Without a header its
columns are item, artist, genre, language, name. RecBole's atomic files (``ml-100k.inter``,
``ml-100k.item``) read as they are.

Outputs: ``bronze.events``, ``members`` (the users, other columns null), ``songs`` (the items of
the metadata file), ``song_extra`` (their names) and ``quarantine``, committed together like the
KKBOX ingest. The holdout of this source is per user (``protocol: leave_one_out``: the last event
is ``eval``, the one before ``calib``) or the engine's time split (``protocol: time``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from relisten_spark import schemas
from relisten_spark.commits import StageRun, file_fingerprints
from relisten_spark.config import Config, InteractionsConfig
from relisten_spark.data import kkbox
from relisten_spark.errors import InputError
from relisten_spark.runs import new_run_id

log = logging.getLogger(__name__)

OUTPUTS = kkbox.OUTPUTS
USER_NAMES = ("user_id", "user", "msno")
ITEM_NAMES = ("item_id", "item", "song_id")
TIME_NAMES = ("timestamp", "time", "ts")
ITEM_FIELDS: dict[str, tuple[str, ...]] = {
    "item": ITEM_NAMES,
    "artist": ("artist", "artist_name", "artist_id"),
    "genre": ("genre", "genres", "genre_ids", "class"),
    "language": ("language", "lang"),
    "name": ("name", "title", "movie_title"),
}
_SEPARATORS = {"tab": "\t", "comma": ",", "whitespace": r"\s+"}
_BLANKS = r"^\s+|\s+$"


@dataclass(frozen=True)
class TextTable:
    """A delimited text file read line by line: ``lines`` ``[line_number long, fields
    array<string>]`` (data lines only, blank ones dropped) and the header's column names
    (lower case, type suffix dropped; empty without a header)."""

    path: str
    lines: DataFrame
    names: tuple[str, ...]


def column_name(raw: str) -> str:
    """A header name without blanks, a BOM or a RecBole type suffix, lower case.

    >>> column_name("\\ufeffUser_ID:token ")
    'user_id'
    """
    return raw.strip().removeprefix("\ufeff").split(":", 1)[0].strip().lower()


def detect_delimiter(first_line: str) -> str:
    """``tab`` if the line holds a tab, else ``comma`` if it holds a comma, else ``whitespace``.

    >>> detect_delimiter("a\\tb c"), detect_delimiter("a,b"), detect_delimiter("a  b")
    ('tab', 'comma', 'whitespace')
    """
    if "\t" in first_line:
        return "tab"
    return "comma" if "," in first_line else "whitespace"


def split_fields(line: Column, delimiter: str) -> Column:
    """``line`` (its trailing ``\\r`` dropped) split by ``delimiter``; every field trimmed."""
    clean = F.regexp_replace(F.regexp_replace(line, r"\r$", ""), _BLANKS, "")
    parts = F.split(clean, _SEPARATORS[delimiter], -1)
    return F.transform(parts, lambda f: F.regexp_replace(f, _BLANKS, ""))


def read_text_table(spark: SparkSession, path: str, conf: InteractionsConfig) -> TextTable:
    """The numbered, split lines of ``path`` (line numbers in file order, 1-based)."""
    lines = kkbox.read_lines(spark, path)
    first = lines.where(F.col("_block") == 0).select("value").limit(1).collect()
    if not first:
        raise InputError(f"input file is empty: {path}")
    first_line = first[0]["value"].removeprefix("\ufeff").removesuffix("\r")
    delimiter = detect_delimiter(first_line) if conf.delimiter == "auto" else conf.delimiter
    names: tuple[str, ...] = ()
    if conf.header:
        names = tuple(column_name(n) for n in re.split(_SEPARATORS[delimiter], first_line.strip()))
    positioned = kkbox.position(lines)
    layout = kkbox.layouts({"file": positioned}, {"file": names})["file"]
    numbered = kkbox.number_lines(positioned, layout)
    data = numbered.where(F.col("line_number") > (1 if conf.header else 0))
    data = data.where(F.regexp_replace("value", r"\s+", "") != "")
    fields = data.select(
        F.col("line_number").cast("long"), split_fields(F.col("value"), delimiter).alias("fields")
    )
    return TextTable(path, fields, names)


def find_column(table: TextTable, aliases: tuple[str, ...], position: int | None) -> int | None:
    """The 0-based position of the first of ``aliases`` in the header, or ``position`` without a
    header; None when a header names none of them."""
    if not table.names:
        return position
    return next((table.names.index(a) for a in aliases if a in table.names), None)


def _field(position: int) -> Column:
    value = F.try_element_at(F.col("fields"), F.lit(position + 1))
    return F.when(value != "", value)


def parse_interactions(table: TextTable) -> DataFrame:
    """``[line_number, user, item, ts double, reason]``: one row per data line; ``reason`` says
    why a line is rejected (null when accepted)."""
    user = find_column(table, USER_NAMES, 0)
    item = find_column(table, ITEM_NAMES, 1)
    if user is None or item is None:
        raise InputError(
            f"{table.path}: the header names no user or no item column "
            f"(header: {', '.join(table.names)}; user: {'/'.join(USER_NAMES)}, item: {'/'.join(ITEM_NAMES)})"
        )
    ts = find_column(table, TIME_NAMES, 2)
    needed = max(user, item) + 1
    raw_ts = _field(ts) if ts is not None else F.lit(None).cast("string")
    parsed = table.lines.select(
        "line_number",
        F.size("fields").alias("_n"),
        _field(user).alias("user"),
        _field(item).alias("item"),
        raw_ts.alias("_ts"),
    ).withColumn("ts", F.col("_ts").try_cast("double"))
    reason = (
        F.when(
            F.col("_n") < needed,
            F.concat(F.lit(f"expected {needed} fields, found "), F.col("_n").cast("string")),
        )
        .when(F.col("user").isNull(), F.lit("empty user"))
        .when(F.col("item").isNull(), F.lit("empty item"))
        .when(
            F.col("_ts").isNotNull() & F.col("ts").isNull(),
            F.concat(F.lit("timestamp is not a number: '"), F.col("_ts"), F.lit("'")),
        )
    )
    return parsed.withColumn("reason", reason).drop("_n", "_ts")


def events_frame(parsed: DataFrame) -> DataFrame:
    """schemas.EVENTS rows of the accepted interactions: ``idx`` 0..n-1 by (timestamp, line).

    One ordered window: the clock is global, like the KKBOX file order.
    """
    ok = parsed.where(F.col("reason").isNull())
    order = Window.orderBy(F.col("ts").asc_nulls_first(), "line_number")
    return ok.select(
        (F.row_number().over(order) - 1).cast("long").alias("idx"),
        F.col("user").alias("msno"),
        F.col("item").alias("song_id"),
        *[
            F.lit(None).cast("string").alias(c)
            for c in ("source_system_tab", "source_screen_name", "source_type")
        ],
        F.lit(None).cast("int").alias("target"),
        F.lit("train").alias("split"),
    )


def quarantine_frame(parsed: DataFrame, path: str, run_id: str) -> DataFrame:
    """schemas.QUARANTINE rows of the rejected lines (``raw``: the fields joined by tabs)."""
    bad = parsed.where(F.col("reason").isNotNull())
    return bad.select(
        F.lit(Path(path).name).alias("file"),
        "line_number",
        F.concat_ws("\t", F.coalesce("user", F.lit("")), F.coalesce("item", F.lit(""))).alias("raw"),
        "reason",
        F.lit(run_id).alias("run_id"),
    )


def item_frames(table: TextTable) -> tuple[DataFrame, DataFrame]:
    """(schemas.SONGS, schemas.SONG_EXTRA) rows of an item metadata file, one per item."""
    found = {key: find_column(table, aliases, pos) for pos, (key, aliases) in enumerate(ITEM_FIELDS.items())}
    if found["item"] is None:
        raise InputError(f"{table.path}: the header names no item column ({'/'.join(ITEM_NAMES)})")

    def value(key: str) -> Column:
        position = found[key]
        return _field(position) if position is not None else F.lit(None).cast("string")

    genre = F.regexp_replace(value("genre"), r"[|\s]+", "|")
    rows = table.lines.select(
        value("item").alias("song_id"),
        F.lit(None).cast("long").alias("song_length"),
        F.when(genre != "", genre).alias("genre_ids"),
        value("artist").alias("artist_name"),
        F.lit(None).cast("string").alias("composer"),
        F.lit(None).cast("string").alias("lyricist"),
        value("language").try_cast("int").alias("language"),
        value("name").alias("name"),
    ).where(F.col("song_id").isNotNull())
    rows = rows.dropDuplicates(["song_id"])
    songs = rows.select(*schemas.SONGS.fieldNames())
    extra = rows.select("song_id", "name", F.lit(None).cast("string").alias("isrc"))
    return songs, extra


def _outputs(spark: SparkSession, cfg: Config, run_id: str) -> dict[str, DataFrame]:
    conf = cfg.data.interactions
    parsed = parse_interactions(read_text_table(spark, conf.path, conf))
    events = events_frame(parsed)
    if conf.items_path:
        songs, extra = item_frames(read_text_table(spark, conf.items_path, conf))
    else:
        songs = spark.createDataFrame([], schemas.SONGS)
        extra = spark.createDataFrame([], schemas.SONG_EXTRA)
    members = (
        events.select("msno")
        .distinct()
        .select("msno", *[F.lit(None).cast(f.dataType).alias(f.name) for f in schemas.MEMBERS.fields[1:]])
    )
    return {
        "events": events,
        "members": members,
        "songs": songs,
        "song_extra": extra,
        "quarantine": quarantine_frame(parsed, conf.path, run_id),
    }


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """``relisten ingest`` for ``data.source: interactions``: the file(s) -> the bronze tables.

    Returns ``run_id``, ``rows`` per table and the new table ``versions``.
    """
    run_id = new_run_id("ingest")
    conf = cfg.data.interactions
    files = {"interactions": conf.path, **({"items": conf.items_path} if conf.items_path else {})}
    out = StageRun(spark, cfg, "bronze", "ingest", OUTPUTS, inputs=file_fingerprints(files), run_id=run_id)
    skipped = out.unchanged()
    if skipped:
        log.info("ingest: %s", skipped)
        return {"run_id": run_id, "skipped": skipped}
    outputs = _outputs(spark, cfg, run_id)
    with out:
        for table in OUTPUTS:
            out.prepare(table, outputs[table].persist())
        versions = out.commit()
    rows = {table: outputs[table].count() for table in OUTPUTS}
    for df in outputs.values():
        df.unpersist()
    log.info("ingest (interactions): %s", rows)
    return {"run_id": run_id, "rows": rows, "versions": versions}
