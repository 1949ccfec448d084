"""Serving features of candidate pairs "now", from end-of-log state tables.

A candidate of ``relisten score`` is a hypothetical event at ``idx = N`` (one after the last
event of the log) of (user, song, surface context). Its serving features are the feature job's
(:func:`~relisten_spark.features.build.compute_features`, profile ``serving``) for such a row:
every PAST aggregate is over the whole log. Rather than re-running the feature job over the log
with the candidates appended, this module reads the log's own serving rows (the ``serving``
partition of ``silver.features``), the feature job's saved encoders (silver.label_codes) and SVD
factors, and aggregates the rows once with each family's "state now" form:

* the **user state** (one row per user): member static columns, SVD user factors, the count,
  window, time, source-share and member_add states, the per-context source counts and the user's
  last event (its codes, time and song columns);
* the **song state** (one row per candidate song): song static columns, SVD song and artist
  factors, the popularity counters over the whole log, the count, window, time and per-context
  source-count states;
* (user, value) counts for P(song attribute | user), joined on the narrow pair frame, as are
  the SVD dot products.

The pairs are then clustered by user (a shuffle of the narrow frame only), both states are
broadcast-joined as packed lookups (:func:`~relisten_spark.features.lookup.packed_lookup`: one
array per data type, so the joins keep few fields and stay in generated code, and the row of
several hundred columns is built once, by the final projection), and each family turns its state
into its features (its ``*_from_state`` columns), so the wide feature rows are built in the
scoring tasks and never shuffled.
``tests/scoring/test_snapshot.py`` checks every serving column against compute_features with
the candidates appended (the definition). Candidate songs are songs of the log
(:func:`~relisten_spark.scoring.surfaces.song_catalog`); a user without events (a member only)
gets the features of a first event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.features import encode, label_codes, popularity
from relisten_spark.features.assemble import config_shape, output_columns
from relisten_spark.features.bronze import BronzeFrames
from relisten_spark.features.catalogue import SOURCE_SHARE_CODES
from relisten_spark.features.columns import rows_before, rows_state, share
from relisten_spark.features.embeddings import SvdFactors, add_svd_dots, read_factors
from relisten_spark.features.encode import LabelCodes
from relisten_spark.features.lookup import packed_lookup
from relisten_spark.features.neighbors import (
    flag_columns,
    last_event_state,
    last_idx_state,
    neighbour_song_columns,
    previous_from_state,
    stored_timestamp_fill,
)
from relisten_spark.features.probability import add_value_counts, value_count_state
from relisten_spark.features.source_profile import (
    SOURCE_COLUMNS,
    prob_name,
    song_prob_name,
    source_share_columns,
)
from relisten_spark.features.spec import Shape
from relisten_spark.features.timeline import (
    membership_time_columns,
    serving_clock,
    time_stats,
    timestamp_column,
)
from relisten_spark.features.user_affinity import (
    USER_ATTRIBUTE_SHARES,
    add_nn_values,
    artist_count_state,
    fit_nn_fill,
    member_add_from_state,
    member_add_state,
    nn_value,
)
from relisten_spark.features.windows import counts_from_state, window_state
from relisten_spark.runtime import checkpoint
from relisten_spark.scoring.rank import cluster_by_user
from relisten_spark.splits import holdout_cutoff

PROFILE = "serving"
# the previous event's columns copied from the user's last event (besides the song's columns)
_LAST_EVENT = ("timestamp", "source_type", "source_screen_name")


@dataclass(frozen=True)
class ScoringClock:
    """The hypothetical event's position: ``idx`` = N (after the log's ``rows`` events) and the
    row-time map's constants."""

    idx: int
    rows: int
    n_train: int
    n_total: int
    cutoff: int

    def timestamp(self) -> Column:
        return timestamp_column(self.n_train, self.n_total, F.lit(self.idx).cast("long"))

    def fit(self) -> Column:
        return encode.fit_rows(PROFILE, self.cutoff)


@dataclass(frozen=True)
class Context:
    """One surface context: its name, its three source codes and its ``source`` code."""

    name: str
    codes: tuple[int, ...]
    source: int


def scoring_clock(events: DataFrame, cfg: Config, as_of: int | None = None) -> ScoringClock:
    """The scoring clock of ``events`` (bronze): N = max(idx) + 1, the serving time map.

    ``as_of`` (the backtest): N = ``as_of``, the log being the rows with ``idx < as_of``; the
    row-time map stays the log's (it depends only on the number of train rows).
    """
    before = F.lit(True) if as_of is None else F.col("idx") < F.lit(as_of)
    row = events.agg(
        F.sum(before.cast("long")).alias("rows"),
        F.max(F.when(before, F.col("idx"))).alias("last"),
        F.sum((F.col("split") == "train").cast("long")).alias("train"),
    ).collect()[0]
    n_train = int(row["train"] or 0)
    if row["last"] is None or n_train < 2:
        raise InputError(f"bronze.events has {n_train} train rows; scoring needs at least 2")
    cutoff = holdout_cutoff(events, cfg.evaluation)
    idx = int(row["last"]) + 1 if as_of is None else as_of
    return ScoringClock(idx, int(row["rows"]), n_train, serving_clock(n_train), cutoff)


def read_history(spark: SparkSession, cfg: Config, now: ScoringClock) -> DataFrame:
    """The ``serving`` rows of silver.features, checked to describe exactly the log of ``now``."""
    path = lake.table_path(cfg.lake.root, "silver", "features")
    rerun = "run `relisten features --set features.profile=serving`"
    if not lake.exists(path):
        raise InputError(f"{path} not found: {rerun}")
    history = lake.read(spark, path, where={"profile": PROFILE}).where(F.col("idx") < F.lit(now.idx))
    got = history.agg(F.count(F.lit(1)).alias("n"), F.max("idx").alias("last")).collect()[0]
    if (got["n"], got["last"]) != (now.rows, now.idx - 1):
        raise InputError(
            f"{path} (serving) has {got['n']} rows up to idx {got['last']} but bronze.events has "
            f"{now.rows} up to {now.idx - 1}: the features are stale, {rerun}"
        )
    return history


def fills(
    history: DataFrame, song_t: DataFrame, fit: Column
) -> tuple[dict[str, float | None], dict[str, float]]:
    """The serving fill values the feature job fits, from its serving rows: (the NN means of
    member_add over the fit songs and rows, the ``before_timestamp`` fill)."""
    fit_rows = history.where(fit)
    fit_songs = song_t.join(fit_rows.select("song_id").distinct(), "song_id")
    return fit_nn_fill(fit_songs, fit_rows), stored_timestamp_fill(history, fit)


def coded_surfaces(codes: DataFrame, source: LabelCodes) -> tuple[DataFrame, list[Context]]:
    """(``[surface, _ctx, <source code columns>, source]``: each surface's context with its
    ``source`` code, encoded with the feature job's encoder; the distinct contexts)."""
    by_surface = codes.select("surface", F.col("context").alias("_ctx"), *SOURCE_COLUMNS)
    by_surface = checkpoint(encode.add_source(by_surface, source))
    coded = by_surface.drop("surface").distinct().collect()  # one row per surface context
    return by_surface, [
        Context(r["_ctx"], tuple(int(r[c]) for c in SOURCE_COLUMNS), int(r["source"]))
        for r in sorted(coded, key=lambda r: r["_ctx"])
    ]


def _context_state(prefix: str, ctxs: Sequence[Context], with_source: bool) -> list[Column]:
    """Per source column (and ``source``): the entity's rows with each context's code."""
    out = []
    for position, column in enumerate(SOURCE_COLUMNS):
        out += value_count_state(prefix, column, {str(j): ctx.codes[position] for j, ctx in enumerate(ctxs)})
    if with_source:
        out += value_count_state(prefix, "source", {str(j): ctx.source for j, ctx in enumerate(ctxs)})
    return out


def _pick(ctxs: Sequence[Context], prefix: str, column: str) -> Column:
    """The state column of :func:`_context_state` of the row's context."""
    value = F.lit(None).cast("long")
    for j, ctx in enumerate(ctxs):
        value = F.when(F.col("_ctx") == ctx.name, F.col(f"_{prefix}_{column}_{j}")).otherwise(value)
    return value


def user_history(rows: DataFrame, now: ScoringClock, shape: Shape, ctxs: Sequence[Context]) -> DataFrame:
    """The user states, one row per user of the log (``rows``: its serving rows with their NN
    values): the aggregates of every user family, the last event and the distinct artists."""
    per_user = rows.groupBy("msno").agg(
        rows_state("msno"),
        last_idx_state(),
        *time_stats("msno"),
        *window_state("msno", shape.windows, now.idx),
        *_context_state("msno", ctxs, with_source=True),
        *source_share_columns(SOURCE_SHARE_CODES),
        *member_add_state(),
    )
    last = last_event_state(rows, per_user, [*_LAST_EVENT, *neighbour_song_columns("before", shape)])
    return per_user.drop("_last_idx").join(last, "msno").join(artist_count_state(rows), "msno")


def song_history(history: DataFrame, now: ScoringClock, shape: Shape, ctxs: Sequence[Context]) -> DataFrame:
    """The song states, one row per song of the log: count, time, window and context states."""
    return history.groupBy("song_id").agg(
        rows_state("song"),
        *time_stats("song"),
        *window_state("song", shape.windows, now.idx),
        *_context_state("song", ctxs, with_source=False),
    )


def user_state(
    users: DataFrame,
    per_user: DataFrame,
    members: DataFrame,
    codes: Mapping[str, LabelCodes],
    factors: SvdFactors,
) -> DataFrame:
    """One row per scored user (``users``: ``[msno]``): member table (the feature job's
    encoders), SVD factors (a zero vector without factor rows) and :func:`user_history`."""
    member_t = encode.member_table(users.select("msno"), members, label_codes.member_codes(codes))
    components = factors.member.join(factors.member_artist, "msno", "left")
    return (
        member_t.join(components, "msno", "left")
        .fillna(0.0, [c for c in components.columns if c != "msno"])
        .join(per_user, "msno", "left")
    )


def song_state(
    songs: DataFrame, song_t: DataFrame, history: DataFrame, per_song: DataFrame, factors: SvdFactors
) -> DataFrame:
    """One row per candidate song (``songs``: ``[song_id]``): static columns, SVD factors, the
    popularity counters over the whole log and :func:`song_history`."""
    counts = popularity.song_counts_batch(
        song_t.withColumnRenamed("song_id", "_song"), history.select("song_id")
    ).withColumnRenamed("_song", "song_id")
    statics = song_t.drop(*[c for c in song_t.columns if c.startswith("_k_")])
    return (
        songs.select("song_id")
        .join(statics, "song_id", "left")
        .join(factors.song, "song_id", "left")
        .join(F.broadcast(factors.artist), "artist_name", "left")
        .join(counts, "song_id", "left")
        .join(per_song, "song_id", "left")
    )


def from_state(
    now: ScoringClock, shape: Shape, ctxs: Sequence[Context], gap_fill: Mapping[str, float]
) -> dict[str, Column]:
    """The serving columns of a pair row computed from the states (every family's
    ``*_from_state`` form); the others are copied from the state tables."""
    n_user, n_song = rows_before("msno"), rows_before("song")
    out: dict[str, Column] = {
        "timestamp": now.timestamp(),
        **popularity.user_counts_from_state(),
        **counts_from_state("msno", shape.windows),
        **counts_from_state("song", shape.windows),
        **member_add_from_state(),
    }
    for column in SOURCE_COLUMNS:
        out[prob_name(column)] = share(_pick(ctxs, "msno", column), n_user)
        out[song_prob_name(column)] = share(_pick(ctxs, "song", column), n_song)
    out["msno_source_prob"] = share(_pick(ctxs, "msno", "source"), n_user)
    for name in USER_ATTRIBUTE_SHARES:
        out[name] = share(F.col(f"_c_{name}"), n_user)
    copied = ["source_type", "source_screen_name", *neighbour_song_columns("before", shape)]
    return {**out, **previous_from_state(now.timestamp(), copied, gap_fill)}


def _narrow(
    pairs: DataFrame,
    by_surface: DataFrame,
    song_t: DataFrame,
    rows: DataFrame,
    factors: SvdFactors,
    fill: Mapping[str, float | None],
) -> DataFrame:
    """``[surface, msno, song_id, artist_key, _ctx, <source codes>, source, <SVD dots>, _c_<share>
    ...]``: the pair columns that need a join by (user, song) or (user, value), hash-partitioned by
    ``msno`` (the only shuffle of the pair rows by user)."""
    attrs = song_t.select(
        "song_id", *[c for c in USER_ATTRIBUTE_SHARES.values() if c != "_nn_yy"], nn_value("yy", fill)
    )
    keys = pairs.select("surface", "msno", "song_id", "artist_key")  # not the pool's own `source`
    narrow = keys.join(F.broadcast(by_surface), "surface").join(F.broadcast(attrs), "song_id", "left")
    narrow = add_svd_dots(narrow, factors).repartition("msno")  # the narrow rows' one shuffle by user
    narrow = add_value_counts(narrow, rows, "msno", USER_ATTRIBUTE_SHARES)  # joins without a shuffle
    return narrow.select(
        "surface", "msno", "song_id", "artist_key", "_ctx", *SOURCE_COLUMNS, "source",
        "song_embeddings_dot", "artist_embeddings_dot", *[f"_c_{n}" for n in USER_ATTRIBUTE_SHARES],
    )  # fmt: skip


def pair_features(
    spark: SparkSession,
    cfg: Config,
    frames: BronzeFrames,
    pairs: DataFrame,
    codes: DataFrame,
    as_of: int | None = None,
) -> DataFrame:
    """Serving features of every candidate pair, clustered by user for
    :func:`~relisten_spark.scoring.rank.score_and_rank`: ``[surface, msno, song_id, artist_key,
    <catalogue columns>]`` (columns outside the serving profile are typed nulls).

    ``pairs``: ``[surface, msno, song_id, artist_key, ...]`` (other columns are ignored);
    ``codes``: score.surface_codes; ``as_of``: the features of an event at that idx, from the
    log's rows before it (:func:`scoring_clock`; None = after the whole log).
    """
    shape = config_shape(cfg)
    now = scoring_clock(frames.events, cfg, as_of)
    history = read_history(spark, cfg, now)
    encoders = label_codes.read_codes(spark, cfg.lake.root, PROFILE)
    by_surface, ctxs = coded_surfaces(codes, label_codes.source_codes(encoders))
    factors = read_factors(spark, cfg.lake.root, PROFILE)
    _check_songs(pairs, history)
    log_songs = encode.song_rows(history.select("song_id").distinct(), frames.songs, frames.song_extra)
    song_t = checkpoint(encode.song_table(log_songs, label_codes.song_codes(encoders)))
    fill, gap_fill = fills(history, song_t, now.fit())
    rows = add_nn_values(history, fill)
    users = user_state(
        pairs.select("msno").distinct(),
        user_history(rows, now, shape, ctxs),
        frames.members,
        encoders,
        factors,
    )
    per_song = song_history(history, now, shape, ctxs)
    songs = song_state(pairs.select("song_id").distinct(), song_t, history, per_song, factors)

    narrow = _narrow(pairs, by_surface, song_t, rows, factors, fill)  # hash-partitioned by msno
    wide, user_columns = packed_lookup(narrow, users, "msno", "msno", _state_columns(users, "msno"), "_lu")
    wide, song_columns = packed_lookup(
        wide, songs, "song_id", "song_id", _state_columns(songs, "song_id"), "_ls"
    )
    wide = wide.select(*narrow.columns, *user_columns, *song_columns)
    computed = from_state(now, shape, ctxs, gap_fill)
    wide = wide.select("*", *[c.alias(n) for n, c in computed.items()])
    wide = wide.select("*", *flag_columns(include_after=False), *membership_time_columns())
    return cluster_by_user(
        wide.select("surface", "msno", "song_id", "artist_key", *output_columns(shape, PROFILE))
    )


def _state_columns(state: DataFrame, key: str) -> dict[str, str]:
    """Every column of a state table but its key, under its own name (for ``packed_lookup``)."""
    return {c: c for c in state.columns if c != key}


def _check_songs(pairs: DataFrame, history: DataFrame) -> None:
    """Raise :class:`InputError` when a candidate song never occurs in the log (the song state
    and its counters are built from the log's rows)."""
    outside = (
        pairs.select("song_id").distinct().join(history.select("song_id").distinct(), "song_id", "left_anti")
    )
    some = [r["song_id"] for r in outside.limit(5).collect()]
    if some:
        raise InputError(f"candidate songs must occur in the log; these do not: {some}")
