"""The ranker's scores as of a cutoff: the serving stack over candidates built only from the
log's rows before it (``relisten backtest`` and the retriever's teacher lists share it).

:func:`score_as_of` takes candidates from the events with ``idx < cutoff`` (heard songs, plays,
the catalog) and, by default, the serving SVD factors (or ``stored`` candidate rows), builds the
serving features of an event at ``idx = cutoff`` from the serving feature rows before it
(:func:`~relisten_spark.scoring.snapshot.pair_features` with ``as_of = cutoff``) and scores
every candidate once with the latest stack of ``scoring.profile``
(:func:`~relisten_spark.scoring.rank.score_pairs`). A retriever version's top K from the same rows
(:func:`~relisten_spark.retrieval.nearest.retriever_lists`) can stand as those stored candidates.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark.config import Config
from relisten_spark.features.bronze import BronzeFrames
from relisten_spark.runtime import Held, checkpoint
from relisten_spark.scoring import rank, score, snapshot
from relisten_spark.scoring.levers import GENRE, POPULARITY, svd_columns


def score_as_of(
    spark: SparkSession,
    cfg: Config,
    frames: BronzeFrames,
    cutoff: int,
    users: DataFrame,
    held: Held,
    stored: DataFrame | None = None,
) -> DataFrame:
    """The scored candidates of ``users`` ``[msno]`` as of ``cutoff``: ``[surface, msno, song_id,
    artist_key, <every lever's columns>, score]`` (materialised). ``stored``: candidate rows
    ``[msno, song_id, rank]`` to draw from (None: the SVD nearest songs)."""
    ensemble = rank.load_ensemble(
        cfg.models.root, cfg.scoring.profile, cfg.scoring.reasons, cfg.scoring.compiled_gbdt
    )
    past = BronzeFrames(
        frames.events.where(F.col("idx") < cutoff), frames.members, frames.songs, frames.song_extra
    )
    cands = score.build_pairs(spark, cfg, past, held, users, stored)
    codes = score.surface_codes(spark, cfg)
    features = snapshot.pair_features(spark, cfg, frames, cands.pairs, codes, as_of=cutoff)
    keep = [*rank.KEYS, POPULARITY, GENRE, *svd_columns(cfg.features.svd_song_k)]
    scored = rank.score_pairs(features, ensemble, keep)
    with rank.arrow_batch_size(spark, cfg.scoring.batch_size):
        return checkpoint(scored)
