"""Writes the serving profile's silver SVD tables from given vectors (tests of their readers)."""

from __future__ import annotations

from typing import Any

from relisten_spark import lake


def write_svd_tables(
    spark: Any, root: str, members: dict[str, list[float]], songs: dict[str, list[float]], values: list[float]
) -> None:
    """silver ``svd_member``, ``svd_song`` and ``svd_values`` under ``root``, profile ``serving``:
    member and song components as given, the user x song singular values ``values``."""
    comps = ", ".join(f"{{p}}_component_{j} float" for j in range(len(values)))
    tables = {
        "svd_member": (
            [("serving", m, *v) for m, v in members.items()],
            "profile string, msno string, " + comps.format(p="member"),
        ),
        "svd_song": (
            [("serving", s, *v) for s, v in songs.items()],
            "profile string, song_id string, " + comps.format(p="song"),
        ),
        "svd_values": (
            [("serving", "user_song", j, float(v)) for j, v in enumerate(values)],
            "profile string, matrix string, component int, value double",
        ),
    }
    for name, (rows, schema) in tables.items():
        lake.write(
            spark, spark.createDataFrame(rows, schema), f"{root}/silver/{name}", partition_by=["profile"]
        )
