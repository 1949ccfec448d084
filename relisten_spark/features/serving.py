"""The serving profile's builder: every feature of the row at ``idx = i`` uses only rows with
``idx < i`` plus static metadata, and fits on the fit rows (train rows before the holdout
cutoff); 'score' rows are never fit on and never change another row's features.

Each family's per-event form is used here; scoring computes the same families "now" from their
state forms (:mod:`~relisten_spark.scoring.snapshot`).
"""

from __future__ import annotations

from pyspark.sql import DataFrame

from relisten_spark.features import popularity
from relisten_spark.features.assemble import assemble, song_table, user_table
from relisten_spark.features.catalogue import SONG_TIME_STATS, SOURCE_SHARE_CODES, neighbour_stems
from relisten_spark.features.embeddings import SvdFactors, add_svd_dots
from relisten_spark.features.inputs import SONG_ATTRIBUTES, EncodedInputs, event_rows
from relisten_spark.features.neighbors import add_neighbor_values, fill_gaps, fit_timestamp_fill
from relisten_spark.features.source_profile import add_song_source_probs, add_source_probs, add_source_shares
from relisten_spark.features.spec import Shape
from relisten_spark.features.timeline import add_timestamp, serving_clock
from relisten_spark.features.user_affinity import (
    add_member_add_cumulative,
    add_nn_values,
    add_user_shares,
    fit_nn_fill,
)
from relisten_spark.features.windows import sequence_columns


def serving_features(inputs: EncodedInputs, factors: SvdFactors, shape: Shape) -> DataFrame:
    """The serving profile's features frame (:func:`~relisten_spark.features.assemble.assemble`)."""
    song_keys = tuple(k for k in popularity.SONG_KEYS.values() if k not in SONG_ATTRIBUTES)
    rows = popularity.add_song_counts_cumulative(event_rows(inputs, song_keys))
    fit_songs = inputs.song_t.join(inputs.songs.where("_fit").select("_song"), "_song")
    rows = add_nn_values(rows, fit_nn_fill(fit_songs, rows.where(inputs.fit)))
    rows = add_timestamp(rows, inputs.n_train, serving_clock(inputs.n_train))
    rows = _cumulative(rows, shape, fit_timestamp_fill(rows, inputs.fit), factors)
    users = user_table(inputs.member_t, factors, None)
    return assemble(rows, users, song_table(inputs.song_t, factors, None), shape, "serving")


def _cumulative(rows: DataFrame, shape: Shape, fill: dict[str, float], factors: SvdFactors) -> DataFrame:
    """The cumulative families, ordered so that the frame is narrow while it is sorted by other
    keys and every user-keyed window shares one sort at the end: the SVD dots (a join by song),
    P(x | user) and P(c | song) ((entity, value) windows), the member_add artist marker, the
    song-keyed windows, then all user-keyed ones (user counts, member_add, the previous event and
    its per-row song values, window and till-now counts, time statistics, the source
    distribution). Each shuffle carries every column added before it: in the order of the
    families' modules (shares and member_add last, user and song keys alternating) the
    9.9M-event run filled ~45 GB of free disk with shuffle files and failed.
    """
    rows = add_svd_dots(rows, factors)
    rows = add_user_shares(rows, serving=True, basis=None)
    rows = add_song_source_probs(rows, serving=True, basis=None)
    rows = add_source_probs(rows, serving=True)
    windows = shape.windows
    rows = rows.select("*", *sequence_columns("song_id", "song", windows, include_after=False, serving=True))
    rows = add_member_add_cumulative(rows)
    rows = popularity.add_user_counts_cumulative(rows)
    rows = rows.select("*", *sequence_columns("msno", "msno", windows, include_after=False, serving=True))
    rows = add_neighbor_values(rows, _previous_row_columns(shape), include_after=False)
    rows = add_source_shares(rows, serving=True, codes=SOURCE_SHARE_CODES)
    return fill_gaps(rows, include_after=False, fill=fill)


def _previous_row_columns(shape: Shape) -> list[str]:
    """The previous song's columns that are per-row values here (the song's time statistics and
    cumulative counts), copied from the previous row; the others are joined by its song key."""
    per_row = {*SONG_TIME_STATS, *popularity.count_columns(popularity.SONG_KEYS)}
    return [stem for stem in neighbour_stems("before", shape) if stem in per_row]
