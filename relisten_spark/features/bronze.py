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


def bronze_versions(cfg: Config) -> dict[str, int]:
    """``{table: version}``: the committed version of each bronze table, all four from the last
    ingest that committed (:mod:`relisten_spark.commits`)."""
    versions = {}
    for name in BRONZE_TABLES:
        path = lake.table_path(cfg.lake.root, "bronze", name)
        if not lake.exists(path):
            raise InputError(f"bronze table {path} not found: run `relisten ingest` first")
        versions[name] = lake.committed_version(path)
    return versions


def read_bronze(spark: SparkSession, cfg: Config, versions: dict[str, int] | None = None) -> BronzeFrames:
    """The four bronze tables of ``cfg.lake.root`` at ``versions`` (default
    :func:`bronze_versions`)."""
    versions = versions or bronze_versions(cfg)
    tables = {
        name: lake.read(spark, lake.table_path(cfg.lake.root, "bronze", name), at=versions[name])
        for name in BRONZE_TABLES
    }
    return BronzeFrames(**tables)
