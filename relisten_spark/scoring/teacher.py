"""The retriever's stage-2 teacher lists: the stage-1 retriever's top M, scored by the ranker as
of the holdout cutoff -> ``silver.retriever_teacher``.

With ``c`` the holdout cutoff (:func:`relisten_spark.splits.holdout_cutoff`):

1. users — the members with a train event before ``c``; ``retriever.finetune.users`` of them
   (null: all) taken by a seeded hash of ``msno``, and ``retriever.finetune.holdout_share`` of
   those (another seeded hash) held out (``part = holdout``) to measure the agreement;
2. lists — the stage-1 retriever's top ``retriever.finetune.candidates`` (M) songs from each
   user's last ``retriever.max_len`` events before ``c``, the user's songs before ``c`` left out
   (as the serving surfaces leave out heard songs): ``retriever_rank``, ``retriever_logit``;
3. teacher scores — every listed song scored by the serving stack through the backtest's path
   (:func:`~relisten_spark.scoring.asof.score_as_of`, the lists as the stored candidates):
   serving features of an event at ``idx = c`` built only from rows before ``c``, in the context
   of the first configured surface (by name); a listed song that surface does not show (its
   song-length bounds) is dropped from the list.

Rows: schemas.RETRIEVER_TEACHER ``[msno, song_id, retriever_rank, retriever_logit,
ranker_score, part]``, the table overwritten in one Delta commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake, schemas
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.features.bronze import BronzeFrames
from relisten_spark.retrieval import nearest
from relisten_spark.runtime import Held, checkpoint
from relisten_spark.scoring import rank
from relisten_spark.scoring.asof import score_as_of

TABLE = "retriever_teacher"
HASH_SCALE = 1_000_000


@dataclass(frozen=True)
class Teacher:
    """The teacher rows (materialised) and the versions they come from."""

    rows: DataFrame
    parent: Path  # the stage-1 retriever's registry folder
    stack_version: str
    surface: str


def teacher_path(cfg: Config) -> str:
    return lake.table_path(cfg.lake.root, "silver", TABLE)


def sample_users(history: DataFrame, cfg: Config) -> DataFrame:
    """``[msno, part]``: the sampled training-period users of ``history`` (rows before the cutoff)
    and their part (module doc)."""
    f, seed = cfg.retriever.finetune, cfg.retriever.seed
    users = history.where(F.col("split") == "train").select("msno").distinct()
    ordered = users.withColumn("_h", F.xxhash64("msno", F.lit(seed)))
    if f.users is not None:
        ordered = ordered.orderBy("_h", "msno").limit(f.users)
    held_out = F.pmod(F.xxhash64("msno", F.lit(seed + 1)), F.lit(HASH_SCALE)) < F.lit(
        int(f.holdout_share * HASH_SCALE)
    )
    return ordered.select("msno", F.when(held_out, "holdout").otherwise("train").alias("part"))


def teacher_config(cfg: Config) -> tuple[Config, str]:
    """``cfg`` with one surface (the first by name) and ``scoring.candidates`` = M; its name."""
    if not cfg.scoring.surfaces:
        raise InputError("scoring.surfaces is empty: the teacher scores need a surface context")
    name = sorted(cfg.scoring.surfaces)[0]
    scoring = cfg.scoring.model_copy(
        update={
            "surfaces": {name: cfg.scoring.surfaces[name]},
            "candidates": cfg.retriever.finetune.candidates,
        }
    )
    return cfg.model_copy(update={"scoring": scoring}), name


def build_teacher(
    spark: SparkSession, cfg: Config, frames: BronzeFrames, cutoff: int, parent: Path, held: Held
) -> Teacher:
    """The teacher rows of the stage-1 version at ``parent`` as of ``cutoff`` (module doc)."""
    history = frames.events.where(F.col("idx") < cutoff)
    users = held.persist(sample_users(history, cfg))
    m = cfg.retriever.finetune.candidates
    top = nearest.retriever_lists(
        spark, cfg.models.root, parent, history, users, True, m, cfg.scoring.block_size
    )
    lists = held.persist(top)
    one, surface = teacher_config(cfg)
    stack_version = str(rank.latest_stack(cfg.models.root, cfg.scoring.profile)["version"])
    stored = lists.select("msno", "song_id", "rank")
    scored = score_as_of(spark, one, frames, cutoff, users.select("msno"), held, stored)
    ranker = scored.select("msno", "song_id", F.col("score").alias("ranker_score"))
    joined = lists.join(ranker, ["msno", "song_id"]).join(users, "msno")
    values = {"retriever_rank": F.col("rank"), "retriever_logit": F.col("score")}
    rows = joined.select(
        *[values.get(f.name, F.col(f.name)).cast(f.dataType).alias(f.name) for f in schemas.RETRIEVER_TEACHER]
    )
    return Teacher(checkpoint(rows), parent, stack_version, surface)


def write_teacher(spark: SparkSession, cfg: Config, rows: DataFrame) -> int:
    """Overwrite silver.retriever_teacher with ``rows`` (one commit); the table's version."""
    return lake.write(spark, rows, teacher_path(cfg), mode="overwrite")
