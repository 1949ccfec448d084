"""The bronze inputs of the feature job and of scoring."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from relisten_spark import lake
from relisten_spark.config import Config
from relisten_spark.errors import InputError

BRONZE_TABLES = ("events", "members", "songs", "song_extra")


@dataclass(frozen=True)
class BronzeFrames:
    """The bronze inputs (schemas.EVENTS, MEMBERS, SONGS, SONG_EXTRA); ``events`` may contain
    ``split='score'`` rows (hypothetical events, all at one idx after the last real one)."""

    events: DataFrame
    members: DataFrame
    songs: DataFrame
    song_extra: DataFrame


def read_bronze(spark: SparkSession, cfg: Config) -> BronzeFrames:
    """The four bronze tables of ``cfg.lake.root``."""
    tables = {}
    for name in BRONZE_TABLES:
        path = lake.table_path(cfg.lake.root, "bronze", name)
        if not lake.exists(path):
            raise InputError(f"bronze table {path} not found: run `relisten ingest` first")
        tables[name] = lake.read(spark, path)
    return BronzeFrames(**tables)
