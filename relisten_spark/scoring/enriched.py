"""``gold.recs_<surface>_enriched``: the recommendations with what a person needs to read them.

Each row of ``gold.recs_<surface>`` (schemas.RECS) with the song's name (bronze.song_extra),
artist, genre ids and language (bronze.songs) beside its ids, and its reasons as one string
(``why``: ``"you often play this artist (54%); listeners like you play it (21%); ..."``).
KKBOX publishes genre ids only, so the genres stay ids (``genre_ids``, split on ``|``).
Written by ``relisten score`` after the recs, partition by partition like them
(schemas.RECS_ENRICHED).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake, schemas
from relisten_spark.config import Config
from relisten_spark.features.bronze import BronzeFrames


def enriched_path(cfg: Config, surface: str) -> str:
    return lake.table_path(cfg.lake.root, "gold", f"recs_{surface}_enriched")


def reasons_text(reasons: Column) -> Column:
    """``array<struct<code, text, weight>>`` as ``"<text> (<weight in %>); ..."``."""
    return F.concat_ws(
        "; ",
        F.transform(
            reasons,
            lambda r: F.format_string("%s (%d%%)", r["text"], F.round(r["weight"] * 100).cast("int")),
        ),
    )


def enrich(recs: DataFrame, songs: DataFrame, song_extra: DataFrame) -> DataFrame:
    """``recs`` (schemas.RECS columns) joined with the song's metadata: schemas.RECS_ENRICHED.
    ``songs`` ``[song_id, artist_name, genre_ids, language, ...]`` (bronze.songs),
    ``song_extra`` ``[song_id, name, ...]`` (bronze.song_extra); a song missing there keeps nulls."""
    meta = songs.select(
        "song_id",
        "artist_name",
        F.split(F.col("genre_ids"), r"\|").alias("genre_ids"),
        "language",
    ).dropDuplicates(["song_id"])
    names = song_extra.select("song_id", F.col("name").alias("song_name")).dropDuplicates(["song_id"])
    joined = recs.join(meta, "song_id", "left").join(names, "song_id", "left")
    columns = {"why": reasons_text(F.col("reasons"))}
    return joined.select(
        *[
            columns.get(f.name, F.col(f.name)).cast(f.dataType).alias(f.name)
            for f in schemas.RECS_ENRICHED.fields
        ]
    )


def write_enriched(spark: SparkSession, cfg: Config, frames: BronzeFrames, run_date: str) -> dict[str, int]:
    """Replace the ``run_date`` partition of every surface's enriched table from that partition
    of its ``gold.recs_<surface>``; return {table: version}."""
    versions = {}
    for name in cfg.scoring.surfaces:
        recs_path = lake.table_path(cfg.lake.root, "gold", f"recs_{name}")
        recs = lake.read(spark, recs_path, where={"run_date": run_date})
        versions[f"gold.recs_{name}_enriched"] = lake.write(
            spark,
            enrich(recs, frames.songs, frames.song_extra),
            enriched_path(cfg, name),
            partition_by=["run_date"],
            replace_where={"run_date": run_date},
        )
    return versions
