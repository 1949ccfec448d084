"""The vocabulary of the feature catalogue: horizons, entities, the nets' fill rules, the
catalogue's configurable sizes and one column's specification (:class:`FeatureSpec`).

Pure Python (no Spark, no torch): the nets read these types in their Python workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

WINDOWS = (10, 25, 500, 5000, 10000, 50000)
SVD_SONG_K = 48
SVD_ARTIST_K = 16


class Horizon(StrEnum):
    """What a column's value may depend on (FEATURES.md section 0); BATCH and FUTURE are
    transductive. The manifest writes the member's value."""

    STATIC = "STATIC"  # an entity attribute from a metadata file
    ROW = "ROW"  # an attribute of the event itself
    PAST = "PAST"  # rows with a smaller idx (and possibly the row itself)
    BATCH = "BATCH"  # an aggregate over the whole log, later and test rows included
    FUTURE = "FUTURE"  # looks explicitly forward


class Entity(StrEnum):
    """What a column describes: a user, a song or the event (context). For a net input it is also
    the branch (tower) the column feeds."""

    USER = "user"
    SONG = "song"
    CONTEXT = "context"


class Fill(StrEnum):
    """The nets' value for a missing numeric input (FEATURES.md step 7), from the fit rows; the
    nets standardise the filled column."""

    MEAN = "mean"  # the column's mean over the fit rows
    ZERO = "zero"
    USER_MIN = "user_min"  # the column's minimum
    USER_MEAN = "user_mean"  # the mean over the distinct users of the fit rows
    SONG_MEAN = "song_mean"  # the mean over the distinct songs of the fit rows


@dataclass(frozen=True)
class Shape:
    """The configurable sizes of the catalogue (the thesis's 388 LightGBM columns need the
    defaults)."""

    windows: tuple[int, ...] = WINDOWS
    k_song: int = SVD_SONG_K
    k_artist: int = SVD_ARTIST_K


@dataclass(frozen=True)
class FeatureSpec:
    """One output column of silver.features: its silver.feature_manifest row.

    ``horizon``: the full-profile tag; ``dtype``: the Spark SQL type name; ``codes``: the label
    encoder whose cardinality applies (None for numeric columns); ``in_nn``: an input of the nets;
    ``nn_fill``: the nets' fill of a missing value (set on every numeric net input, None
    elsewhere); ``svd_component``: ``j`` of an SVD factor column ``<group>_<j>`` (the nets feed
    those raw and pair the groups); ``note``: definitions and deviations, for people.
    """

    name: str
    family: str
    horizon: Horizon
    entity: Entity
    dtype: str
    codes: str | None = None
    in_nn: bool = False
    nn_fill: Fill | None = None
    svd_component: int | None = None
    note: str = ""
