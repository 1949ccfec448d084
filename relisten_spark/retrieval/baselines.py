"""The retriever's baselines as factor models: user and item vectors whose dot product ranks songs.

Each baseline is a pair of frames, users ``[msno, vector array<float>]`` and items ``[song_id,
vector array<float>]``, ranked by :func:`relisten_spark.retrieval.nearest.factor_top_k` (the same
exact blocked top-K, with the same heard exclusion, as the retriever):

* popularity — every user ``[1]``, every song ``[plays]`` (its events in the rows given);
* SVD nearest songs — ``U diag(s)`` and ``V`` of the user x song SVD of the feature job (the
  scoring path's candidates without silver.candidates, :mod:`relisten_spark.scoring.candidates`); a member
  without rows in the SVD's fit has no vector (the feature job writes zeros for one, whose
  "list" would only be the order the top-K scans tied songs in);
* SVD of the rows given (:func:`svd_fit_vectors`) — the same factorisation as the feature job's
  (binary user x song matrix, same rank and solver), fit on the rows given as ALS is (the rows
  before the eval period; the whole log for ``relisten candidates``' ``svd`` source), rather
  than on the feature job's ``fit`` rows;
* ALS — Spark ML's implicit ALS (:mod:`relisten_spark.retrieval.als`).
"""

from __future__ import annotations

import re

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark.config import FeaturesConfig
from relisten_spark.errors import InputError
from relisten_spark.features.embeddings import read_svd_table, song_entries
from relisten_spark.features.svd import randomized_svd, session_buckets
from relisten_spark.retrieval.sequences import dense_index
from relisten_spark.runtime import checkpoint


def factor_columns(df: DataFrame, prefix: str) -> list[str]:
    """The ``<prefix>_<j>`` columns of ``df`` ordered by ``j``; raises if there are none.

    >>> from types import SimpleNamespace
    >>> factor_columns(SimpleNamespace(columns=["msno", "c_10", "c_2", "c_0"]), "c")
    ['c_0', 'c_2', 'c_10']
    """
    pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)$")
    found = sorted((int(m.group(1)), c) for c in df.columns if (m := pattern.match(c)))
    if not found:
        raise InputError(f"factor table has no {prefix}_<j> columns (columns: {', '.join(df.columns)})")
    return [c for _, c in found]


def singular_values(values: DataFrame, profile: str) -> list[float]:
    """The user x song singular values in component order (``svd_values``: k small rows)."""
    rows = (
        values.where(F.col("matrix") == "user_song")
        .select("component", "value")
        .orderBy("component")
        .collect()
    )
    if not rows:
        raise InputError(f"silver/svd_values has no user_song values for profile '{profile}'")
    return [float(r["value"]) for r in rows]


def popularity_vectors(rows: DataFrame, users: DataFrame | None = None) -> tuple[DataFrame, DataFrame]:
    """(users, items): every user of ``users`` ``[msno]`` (None: of ``rows`` ``[msno, song_id,
    ...]``) with ``[1]``, every song of ``rows`` with ``[plays]``, its number of rows."""
    users = (
        (rows if users is None else users)
        .select("msno")
        .distinct()
        .select("msno", F.array(F.lit(1.0)).cast("array<float>").alias("vector"))
    )
    plays = rows.groupBy("song_id").agg(F.count("*").cast("float").alias("_plays"))
    return users, plays.select("song_id", F.array("_plays").alias("vector"))


def with_factors(users: DataFrame) -> DataFrame:
    """The users ``[msno, vector]`` whose vector is not all zeros (an SVD pads the components
    it could not find, and the feature job writes zeros for a member outside its fit)."""
    return users.where(F.exists("vector", lambda x: x != 0))


def svd_vectors(spark: SparkSession, root: str, profile: str) -> tuple[DataFrame, DataFrame]:
    """(users ``U diag(s)``, items ``V``) of the silver SVD tables of ``profile``; members whose
    components are all zero (no rows in the fit) are left out."""
    members = read_svd_table(spark, root, "svd_member", profile)
    songs = read_svd_table(spark, root, "svd_song", profile)
    values = singular_values(read_svd_table(spark, root, "svd_values", profile), profile)
    user_cols = factor_columns(members, "member_component")
    song_cols = factor_columns(songs, "song_component")
    if not len(user_cols) == len(song_cols) == len(values):
        raise InputError(
            f"SVD tables disagree: {len(user_cols)} member components, {len(song_cols)} song "
            f"components, {len(values)} singular values"
        )
    scaled = [F.col(c) * F.lit(s) for c, s in zip(user_cols, values, strict=True)]
    users = with_factors(members.select("msno", F.array(*scaled).cast("array<float>").alias("vector")))
    items = songs.select("song_id", F.array(*song_cols).cast("array<float>").alias("vector"))
    return users, items


def svd_fit_vectors(rows: DataFrame, features: FeaturesConfig, rows_name: str) -> tuple[DataFrame, DataFrame]:
    """(users ``U diag(s)``, items ``V``), materialised, of the binary user x song SVD of ``rows``
    ``[msno, song_id, ...]``, with the feature job's rank, sketch and solver settings
    (``features.*``); ``rows_name`` says in its log lines which rows these are."""
    users = dense_index(rows, "msno", "_user", start=0)
    items = dense_index(rows, "song_id", "_item", start=0)
    coded = (
        rows.join(users, "msno")
        .join(items, "song_id")
        .select(F.col("_user").alias("msno"), F.col("_item").alias("song_id"))
    )
    svd = randomized_svd(
        song_entries(coded),
        features.svd_song_k,
        features.svd_oversample,
        features.svd_power_iters,
        features.seed,
        session_buckets(rows.sparkSession),
        f"user_song ({rows_name})",
        features.svd_local_max_nnz,
    )
    scale = F.array(*[F.lit(float(v)) for v in svd.values])
    scaled = F.zip_with("vec", scale, lambda u, v: u * v).cast("array<float>")
    user_vectors = with_factors(
        svd.rows.join(users, F.col("id") == F.col("_user")).select("msno", scaled.alias("vector"))
    )
    item_vectors = svd.cols.join(items, F.col("id") == F.col("_item")).select(
        "song_id", F.col("vec").cast("array<float>").alias("vector")
    )
    try:  # materialised, so that the factorisation's cached intermediates can go
        return checkpoint(user_vectors), checkpoint(item_vectors)
    finally:
        svd.unpersist()
