"""Which catalogue columns the nets take and how they fill a missing value (FEATURES.md 3.1 and
step 7): the ``in_nn`` and ``nn_fill`` fields of :class:`~relisten_spark.features.spec.FeatureSpec`.

The nets' inputs are the notebook's 19 categoricals and 2 genres, its 38 context numerics, the
58 usr_feat and 13 song_feat columns of its frozen lookup tables, the SVD factors (the user's, the
song's and the previous / next song's) and the neighbours' song ids.
"""

from __future__ import annotations

from dataclasses import replace

from relisten_spark.features.spec import WINDOWS, FeatureSpec, Fill

_CONTEXT = {
    "after_artist_same",
    "after_song_rec_cnt",
    "after_timestamp",
    "after_type_same",
    "before_artist_same",
    "before_song_rec_cnt",
    "before_timestamp",
    "before_type_same",
    *[f"msno_{w}_{side}_cnt" for w in WINDOWS for side in ("before", "after")],
    "msno_source_screen_name_prob",
    "msno_source_system_tab_prob",
    "msno_source_type_prob",
    "msno_till_now_cnt",
    "registration_init_time",
    "song_50000_after_cnt",
    "song_50000_before_cnt",
    "song_till_now_cnt",
    "timestamp",
    "msno_artist_name_prob",
    "msno_first_genre_id_prob",
    "msno_xxx_prob",
    "msno_language_prob",
    "msno_yy_prob",
    "msno_source_prob",
    "song_source_system_tab_prob",
    "song_source_screen_name_prob",
    "song_source_type_prob",
}
_CATEGORICAL = {
    "msno_code",
    "city",
    "gender",
    "registered_via",
    "artist_name",
    "language",
    "cc",
    "source_type",
    "source_screen_name",
    "source_system_tab",
    "before_source_type",
    "after_source_type",
    "before_source_screen_name",
    "after_source_screen_name",
    "before_language",
    "after_language",
    "song_code",
    "before_song_code",
    "after_song_code",
    "first_genre_id",
    "second_genre_id",
}
_SONG_FEAT = {
    "artist_rec_cnt",
    "artist_song_cnt",
    "composer_song_cnt",
    "genre_rec_cnt",
    "genre_song_cnt",
    "song_length",
    "song_rec_cnt",
    "song_timestamp_mean",
    "song_timestamp_std",
    "xxx_rec_cnt",
    "xxx_song_cnt",
    "yy",
    "yy_song_cnt",
}
_USER_FEAT = {
    "bd",
    "expiration_date",
    "msno_rec_cnt",
    "msno_timestamp_mean",
    "msno_timestamp_std",
    "registration_init_time",
    "artist_msno_cnt",
}
# the usr_feat source shares: msno_{column}_{code} for these codes
_SHARE_CODES = {
    "source_system_tab": tuple(range(9)),
    "source_screen_name": (*range(15), 17, 18, 19, 20, 21),
    "source_type": tuple(range(12)),
}
_SVD_PREFIXES = ("member_component_", "member_artist_component_", "song_component_", "artist_component_")
# the NN song table's columns filled with the mean over songs (step 7), with artist_component_*
_SONG_MEAN_FILL = {
    "song_length",
    "genre_id_cnt",
    "artist_song_cnt",
    "composer_song_cnt",
    "lyricist_song_cnt",
    "genre_song_cnt",
    "song_rec_cnt",
    "artist_rec_cnt",
    "composer_rec_cnt",
    "lyricist_rec_cnt",
    "genre_rec_cnt",
    "yy",
    "cc_song_cnt",
    "xxx_song_cnt",
    "yy_song_cnt",
    "cc_rec_cnt",
    "xxx_rec_cnt",
    "yy_rec_cnt",
    "song_timestamp_std",
    "artist_cnt",
    "lyricist_cnt",
    "composer_cnt",
    "is_featured",
}
# the NN member table's fills (step 7); the member_add columns are filled with 0 (step 8)
_MEMBER_FILL = {"bd": Fill.USER_MEAN, "msno_timestamp_std": Fill.USER_MIN}
MEMBER_ADD_FAMILY = "member_add"


def _takes(spec: FeatureSpec) -> bool:
    name = spec.name
    share = any(name == f"msno_{col}_{c}" for col, codes in _SHARE_CODES.items() for c in codes)
    member_add = name.startswith("msno_") and name.endswith(("_mean", "_std")) and "timestamp" not in name
    return (
        spec.in_nn
        or name in _CONTEXT
        or name in _CATEGORICAL
        or name in _SONG_FEAT
        or name in _USER_FEAT
        or share
        or member_add
        or name.startswith(_SVD_PREFIXES)
    )


def _fill(spec: FeatureSpec) -> Fill:
    if spec.name in _SONG_MEAN_FILL or spec.name.startswith("artist_component_"):
        return Fill.SONG_MEAN
    if spec.family == MEMBER_ADD_FAMILY:
        return Fill.ZERO
    return _MEMBER_FILL.get(spec.name, Fill.MEAN)


def mark_nn_input(spec: FeatureSpec) -> FeatureSpec:
    """``spec`` with ``in_nn`` (true if the nets take it, or already set) and, for a numeric net
    input, its ``nn_fill``.

    >>> from relisten_spark.features.spec import Entity, Horizon
    >>> bd = mark_nn_input(FeatureSpec("bd", "member_static", Horizon.STATIC, Entity.USER, "double"))
    >>> bd.in_nn, bd.nn_fill
    (True, <Fill.USER_MEAN: 'user_mean'>)
    """
    if not _takes(spec):
        return replace(spec, in_nn=False, nn_fill=None)
    return replace(spec, in_nn=True, nn_fill=None if spec.codes is not None else _fill(spec))
