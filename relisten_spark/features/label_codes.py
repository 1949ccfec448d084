"""The fitted label encoders of a feature profile, saved by the feature job as
``silver.label_codes`` (schemas.LABEL_CODES, partitioned by ``profile``) and read by scoring, so
that scoring encodes its inputs with the feature job's codes instead of refitting them.

Encoder names are the ``codes`` names of the manifest: the three source columns, ``source``, the
member table's (encode.MEMBER_ENCODERS) and the song table's (encode.SONG_ENCODERS).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake, schemas
from relisten_spark.errors import InputError
from relisten_spark.features.encode import (
    MEMBER_ENCODERS,
    SONG_ENCODERS,
    SOURCE_COLUMNS,
    EventCodes,
    LabelCodes,
    MemberCodes,
    SongCodes,
)
from relisten_spark.runtime import checkpoint

TABLE = "label_codes"
SOURCE = "source"


def codes_frame(spark: SparkSession, codes: Mapping[str, LabelCodes], profile: str) -> DataFrame:
    """The schemas.LABEL_CODES rows of ``codes`` (encoder name -> fitted encoder)."""
    missing = spark.createDataFrame([(profile, name, None, 0) for name in codes], schemas.LABEL_CODES)
    frames = [
        fitted.mapping.select(
            F.lit(profile).alias("profile"),
            F.lit(name).alias("encoder"),
            F.col("value").cast("string").alias("value"),
            F.col("code").cast("int").alias("code"),
        )
        for name, fitted in codes.items()
    ]
    out = missing
    for frame in frames:
        out = out.unionByName(frame)
    return out


def read_codes(spark: SparkSession, root: str, profile: str) -> dict[str, LabelCodes]:
    """Every encoder of ``profile`` in silver.label_codes (values as strings: encode.apply_codes
    casts them to the encoded column's type)."""
    path = lake.table_path(root, "silver", TABLE)
    rerun = f"run `relisten features --set features.profile={profile}`"
    if not lake.exists(path):
        raise InputError(f"{path} not found: {rerun}")
    table = checkpoint(lake.read(spark, path, where={"profile": profile}).drop("profile"))
    sizes = {
        r["encoder"]: int(r["size"])
        for r in table.groupBy("encoder").agg(F.max("code").alias("size")).collect()
    }
    if not sizes:
        raise InputError(f"{path} has no encoders of profile '{profile}': {rerun}")
    return {
        name: LabelCodes(
            table.where((F.col("encoder") == name) & (F.col("code") > 0)).select("value", "code"), size
        )
        for name, size in sizes.items()
    }


def _pick(codes: Mapping[str, LabelCodes], names: Iterable[str]) -> dict[str, LabelCodes]:
    absent = [name for name in names if name not in codes]
    if absent:
        raise InputError(f"silver.{TABLE} has no encoder {absent[0]!r}: rerun `relisten features`")
    return {name: codes[name] for name in names}


def event_codes(codes: Mapping[str, LabelCodes]) -> EventCodes:
    return EventCodes(_pick(codes, SOURCE_COLUMNS))


def source_codes(codes: Mapping[str, LabelCodes]) -> LabelCodes:
    return _pick(codes, [SOURCE])[SOURCE]


def member_codes(codes: Mapping[str, LabelCodes]) -> MemberCodes:
    return MemberCodes(**_pick(codes, MEMBER_ENCODERS))


def song_codes(codes: Mapping[str, LabelCodes]) -> SongCodes:
    return SongCodes(**_pick(codes, SONG_ENCODERS))
