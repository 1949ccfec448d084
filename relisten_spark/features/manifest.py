"""The feature manifest: every output column of silver.features with its family, horizon,
entity, code cardinality, model membership and deviations from the thesis code.

* ``in_gbdt``: one of the 388 LightGBM columns the thesis code builds
  (``final_features_mike_code388.txt``, reproduced by :func:`gbdt_columns` in its order).
* ``in_nn``: an input of the nets (FEATURES.md section 3.1), directly or through the frozen
  per-user / per-song lookup tables (``entity`` says which tower).
* ``note``: deviations from the thesis code. Numeric columns keep nulls (LightGBM handles them);
  the nets' fill of FEATURES.md step 7 is left to the nets' standardisation and is stated in the
  note as ``nn_fill=<rule>``: ``song_mean`` (mean over the distinct songs of the fit rows),
  ``user_mean`` (mean over the distinct users), ``user_min`` (minimum over users), ``zero``.
* serving profile: BATCH columns become cumulative over earlier rows (horizon PAST), FUTURE
  columns are absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from relisten_spark import schemas

WINDOWS = (10, 25, 500, 5000, 10000, 50000)
SVD_SONG_K = 48
SVD_ARTIST_K = 16

# msno_source_{column}_{code}: the codes that get a share column (every KKBOX code, missing = 0)
SOURCE_SHARE_CODES: dict[str, tuple[int, ...]] = {
    "source_system_tab": tuple(range(10)),
    "source_screen_name": tuple(range(23)),
    "source_type": tuple(range(13)),
}
# ... and the codes of those kept by the thesis's LightGBM (importance >= 85, by code)
_GBDT_SHARE_CODES = {
    "source_system_tab": tuple(range(9)),
    "source_screen_name": (0, 1, 2, *range(4, 14), 15, 16, 17, 18, 20, 21, 22),
    "source_type": (0, 1, 3, 4, 5, 7, 8, 9, 10, 11, 12),
}
# ... and the 58 usr_feat columns of the nets (section 3.1)
_NN_SHARE_CODES = {
    "source_system_tab": tuple(range(9)),
    "source_screen_name": (*range(15), 17, 18, 19, 20, 21),
    "source_type": tuple(range(12)),
}
_DROPPED_BEFORE_COMPONENTS = (20, 22, 34, 42, 45, 46, 47)
_DROPPED_AFTER_COMPONENTS = (26, 30, 39, 44, 45)

SHARE_MAPPING_NOTE = (
    "code c = c-th value in sorted order with 0 = missing (lystdo's encoding; on KKBOX: system_tab "
    "0 NaN,1 discover,2 explore,3 listen with,4 my library,5 notification,6 null,7 radio,8 search,"
    "9 settings; screen_name 0 NaN,1 Album more,2 Artist more,3 Concert,4 Discover Chart,5 Discover "
    "Feature,6 Discover Genre,7 Discover New,8 Explore,9 Local playlist more,10 My library,11 My "
    "library_Search,12 Online playlist more,13 Others profile more,14 Payment,15 People global,16 "
    "People local,17 Radio,18 Search,19 Search Home,20 Search Trends,21 Self profile more,22 Unknown; "
    "source_type 0 NaN,1 album,2 artist,3 listen-with,4 local-library,5 local-playlist,6 "
    "my-daily-playlist,7 online-playlist,8 radio,9 song,10 song-based-playlist,11 "
    "top-hits-for-artist,12 topic-article-playlist); the thesis (NaN last) gives other meanings"
)
CODE_NOTE = "label code: 0 = missing, 1..n = sorted fit values, n+1 = unseen (thesis: sklearn, NaN last)"


@dataclass(frozen=True)
class Shape:
    """The configurable sizes of the catalogue (the 388 list needs the defaults)."""

    windows: tuple[int, ...] = WINDOWS
    k_song: int = SVD_SONG_K
    k_artist: int = SVD_ARTIST_K


@dataclass(frozen=True)
class FeatureSpec:
    """One output column. ``horizon`` is the full-profile tag of FEATURES.md; ``codes`` names the
    encoder whose cardinality applies (None for numeric columns)."""

    name: str
    family: str
    horizon: str
    entity: str
    dtype: str
    codes: str | None = None
    in_nn: bool = False
    note: str = ""


def _component_names(prefix: str, k: int, dropped: Iterable[int] = ()) -> list[str]:
    skip = set(dropped)
    return [f"{prefix}_{j}" for j in range(k) if j not in skip]


def gbdt_columns() -> list[str]:
    """The 388 LightGBM columns of the thesis code, in the order of its feature list.

    >>> cols = gbdt_columns()
    >>> len(cols), len(set(cols)), cols[:2]
    (388, 388, ['source_system_tab', 'source_screen_name'])
    """
    sources = ["source_system_tab", "source_screen_name", "source_type"]
    windows: list[str] = []
    for w in WINDOWS:
        windows.append(f"msno_{w}_before_cnt")
        if w >= 10000:
            windows.append(f"song_{w}_before_cnt")
        windows.append(f"msno_{w}_after_cnt")
        if w == 50000:
            windows.append(f"song_{w}_after_cnt")
    shares = [f"msno_{col}_{c}" for col, codes in _GBDT_SHARE_CODES.items() for c in codes]
    song = [
        "song_length",
        "artist_name",
        "language",
        "first_genre_id",
        "artist_song_cnt",
        "composer_song_cnt",
        "lyricist_song_cnt",
        "genre_song_cnt",
        "song_rec_cnt",
        "artist_rec_cnt",
        "composer_rec_cnt",
        "genre_rec_cnt",
        "cc",
        "xxx",
        "yy",
        "cc_song_cnt",
        "xxx_song_cnt",
        "yy_song_cnt",
        "xxx_rec_cnt",
    ]
    neighbour_head = [
        "song_length",
        "language",
        "first_genre_id",
        "artist_song_cnt",
        "genre_song_cnt",
        "song_rec_cnt",
        "artist_rec_cnt",
        "genre_rec_cnt",
        "cc",
    ]
    after_head = [*neighbour_head[:4], "composer_song_cnt", *neighbour_head[4:]]
    stamps = ["song_timestamp_mean", "song_timestamp_std"]
    return [
        *sources,
        *[f"msno_{c}_prob" for c in sources],
        "song_embeddings_dot",
        "artist_embeddings_dot",
        "timestamp",
        "msno_till_now_cnt",
        "song_till_now_cnt",
        *windows,
        "before_source_type",
        "after_source_type",
        "before_source_screen_name",
        "after_source_screen_name",
        "before_timestamp",
        "after_timestamp",
        "msno_artist_name_prob",
        "msno_first_genre_id_prob",
        "msno_xxx_prob",
        "msno_language_prob",
        "msno_yy_prob",
        "source",
        "msno_source_prob",
        *[f"song_{c}_prob" for c in sources],
        "city",
        "bd",
        "gender",
        "registered_via",
        "registration_init_time",
        "expiration_date",
        "msno_rec_cnt",
        *shares,
        *_component_names("member_component", SVD_SONG_K),
        *_component_names("member_artist_component", SVD_ARTIST_K),
        "msno_timestamp_mean",
        "msno_timestamp_std",
        "msno_song_length_mean",
        "artist_msno_cnt",
        *song,
        *_component_names("song_component", SVD_SONG_K),
        *_component_names("artist_component", SVD_ARTIST_K),
        *stamps,
        *[f"before_{c}" for c in neighbour_head],
        *_component_names("before_song_component", SVD_SONG_K, _DROPPED_BEFORE_COMPONENTS),
        *_component_names("before_artist_component", SVD_ARTIST_K),
        *[f"before_{c}" for c in stamps],
        *[f"after_{c}" for c in after_head],
        *_component_names("after_song_component", SVD_SONG_K, _DROPPED_AFTER_COMPONENTS),
        *_component_names("after_artist_component", SVD_ARTIST_K),
        *[f"after_{c}" for c in stamps],
        "before_type_same",
        "after_type_same",
        "before_artist_same",
        "after_artist_same",
        "time_spent",
        "time_left",
        "duration",
    ]


# ---- the catalogue -------------------------------------------------------------------------
_D, _F, _I, _L = "double", "float", "int", "bigint"
_NN_CONTEXT = {
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
_NN_CATEGORICAL = {
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
_NN_SONG_FEAT = {
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
_NN_USER_FEAT = {
    "bd",
    "expiration_date",
    "msno_rec_cnt",
    "msno_timestamp_mean",
    "msno_timestamp_std",
    "registration_init_time",
    "artist_msno_cnt",
}
# the step-7 NN table fills (FEATURES.md)
_NN_SONG_MEAN_FILL = {
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

_MISSING_NULL = (
    "missing key -> null count (thesis: 'code 0 -> null', which under sklearn >= 0.24 nulls a real group)"
)
_SERVING_CUMULATIVE = "serving: cumulative over rows with a smaller idx"
_SVD_NOTE = (
    "serving: fit on the fit rows (train rows before the holdout cutoff); unseen entity -> zero vector"
)


def _song_meta() -> list[FeatureSpec]:
    f = "song_metadata"
    return [
        FeatureSpec("song_length", f, "STATIC", "song", _D, note="log1p(ms)"),
        FeatureSpec(
            "artist_name",
            f,
            "STATIC",
            "song",
            _I,
            "artist_name",
            note=f"{CODE_NOTE}; missing artist -> 0 "
            "(thesis songs_gbdt: max+1); first artist cut at 'and' ',' ' feat' '&' (case-sensitive)",
        ),
        FeatureSpec(
            "language", f, "STATIC", "song", _I, "language", note=f"{CODE_NOTE}; -1 and missing -> 0"
        ),
        FeatureSpec(
            "first_genre_id",
            f,
            "STATIC",
            "song",
            _I,
            "genre",
            note=f"{CODE_NOTE}; joint genre encoder, 0 = no genre",
        ),
    ]


def _counts(prefixes: Iterable[str], family: str) -> list[FeatureSpec]:
    out = []
    for p in prefixes:
        for kind in ("rec",) if p == "song" else ("song", "rec"):
            note = "log1p" if p == "song" else f"log1p; {_MISSING_NULL}"
            out.append(FeatureSpec(f"{p}_{kind}_cnt", family, "BATCH", "song", _D, note=note))
    return out


def _neighbour_names(side: str, shape: Shape) -> list[str]:
    """The song-table columns joined for the previous / next song: the 388 list's choice plus
    the SVD components it drops (the nets' context branch takes all of them, FEATURES.md 3.2)."""
    head = [
        "song_length",
        "language",
        "first_genre_id",
        "artist_song_cnt",
        "genre_song_cnt",
        "song_rec_cnt",
        "artist_rec_cnt",
        "genre_rec_cnt",
        "cc",
    ]
    if side == "after":
        head.insert(4, "composer_song_cnt")
    stems = [
        *head,
        *_component_names("song_component", shape.k_song),
        *_component_names("artist_component", shape.k_artist),
        "song_timestamp_mean",
        "song_timestamp_std",
    ]
    return [f"{side}_{stem}" for stem in stems]


def catalogue(shape: Shape = Shape()) -> list[FeatureSpec]:
    """Every full-profile output column, the 388 LightGBM columns first (their order), then the
    extra net inputs, then catalogue columns that neither model uses."""
    specs: dict[str, FeatureSpec] = {}

    def add(*items: FeatureSpec) -> None:
        for s in items:
            specs[s.name] = s

    src = ("source_system_tab", "source_screen_name", "source_type")
    add(*[FeatureSpec(c, "context_codes", "ROW", "context", _I, c, note=CODE_NOTE) for c in src])
    add(
        *[
            FeatureSpec(
                f"msno_{c}_prob", "user_source_prob", "BATCH", "context", _D, note="P(x | user), row counted"
            )
            for c in src
        ]
    )
    add(
        FeatureSpec("song_embeddings_dot", "svd_dot", "BATCH", "context", _D, note=_SVD_NOTE),
        FeatureSpec("artist_embeddings_dot", "svd_dot", "BATCH", "context", _D, note=_SVD_NOTE),
        FeatureSpec(
            "timestamp",
            "row_time",
            "PAST",
            "context",
            _D,
            note="serving: train segment scaled to the "
            "train row count, test segment at the KKBOX test/train proportion",
        ),
        FeatureSpec("msno_till_now_cnt", "till_now", "PAST", "context", _D, note="log1p"),
        FeatureSpec("song_till_now_cnt", "till_now", "PAST", "context", _D, note="log1p"),
    )
    for w in shape.windows:
        for key in ("msno", "song"):
            add(FeatureSpec(f"{key}_{w}_before_cnt", "before_windows", "PAST", "context", _D, note="log1p"))
            add(FeatureSpec(f"{key}_{w}_after_cnt", "after_windows", "FUTURE", "context", _D, note="log1p"))
    for side, horizon, fam in (("before", "PAST", "previous_event"), ("after", "FUTURE", "next_event")):
        add(
            FeatureSpec(f"{side}_source_type", fam, horizon, "context", _I, "source_type", note=CODE_NOTE),
            FeatureSpec(
                f"{side}_source_screen_name",
                fam,
                horizon,
                "context",
                _I,
                "source_screen_name",
                note=CODE_NOTE,
            ),
            FeatureSpec(
                f"{side}_timestamp",
                fam,
                horizon,
                "context",
                _D,
                note="log1p gap; no neighbour -> mean over the row's split (serving: over the fit rows)",
            ),
            FeatureSpec(
                f"{side}_song_code",
                fam,
                horizon,
                "context",
                _I,
                "song_code",
                in_nn=True,
                note=f"{CODE_NOTE}; the nets' {side}_song_id embedding index",
            ),
        )
    step8 = "TP+T basis (train rows whose pair occurs in test not counted; every row gets a value)"
    for name in (
        "msno_artist_name_prob",
        "msno_first_genre_id_prob",
        "msno_xxx_prob",
        "msno_language_prob",
        "msno_yy_prob",
    ):
        add(FeatureSpec(name, "user_attr_prob", "BATCH", "context", _D, note=f"P(f | user); {step8}"))
    add(
        FeatureSpec(
            "source",
            "add_source",
            "ROW",
            "context",
            _I,
            "source",
            note=f"{CODE_NOTE}; fit on the fit rows (thesis: TP+T)",
        ),
        FeatureSpec(
            "msno_source_prob", "user_attr_prob", "BATCH", "context", _D, note=f"P(source | user); {step8}"
        ),
    )
    add(
        *[
            FeatureSpec(
                f"song_{c}_prob", "song_source_prob", "BATCH", "context", _D, note=f"P(c | song); {step8}"
            )
            for c in src
        ]
    )
    add(
        FeatureSpec("city", "member_static", "STATIC", "user", _I, "city", note=CODE_NOTE),
        FeatureSpec(
            "bd", "member_static", "STATIC", "user", _D, note="null if bd <= 0 or bd >= 75; nn_fill=user_mean"
        ),
        FeatureSpec("gender", "member_static", "STATIC", "user", _I, "gender", note=CODE_NOTE),
        FeatureSpec(
            "registered_via", "member_static", "STATIC", "user", _I, "registered_via", note=CODE_NOTE
        ),
        FeatureSpec(
            "registration_init_time",
            "member_static",
            "STATIC",
            "user",
            _L,
            note="epoch s of 00:00 UTC+8 (thesis: machine-local time.mktime)",
        ),
        FeatureSpec(
            "expiration_date",
            "member_static",
            "STATIC",
            "user",
            _L,
            note="epoch s of 00:00 UTC+8 (thesis: machine-local time.mktime)",
        ),
        FeatureSpec("msno_rec_cnt", "user_activity", "BATCH", "user", _D, note="log1p"),
    )
    for col, codes in SOURCE_SHARE_CODES.items():
        for c in codes:
            add(
                FeatureSpec(
                    f"msno_{col}_{c}",
                    "user_source_distribution",
                    "BATCH",
                    "user",
                    _D,
                    note=f"share of the user's rows with code {c}; {SHARE_MAPPING_NOTE}",
                )
            )
    add(
        *[
            FeatureSpec(n, "svd_user", "BATCH", "user", _F, note=_SVD_NOTE)
            for n in _component_names("member_component", shape.k_song)
            + _component_names("member_artist_component", shape.k_artist)
        ]
    )
    add(
        FeatureSpec("msno_timestamp_mean", "time_stats", "BATCH", "user", _D),
        FeatureSpec("msno_timestamp_std", "time_stats", "BATCH", "user", _D, note="ddof=1; nn_fill=user_min"),
    )
    member_add_note = f"{step8}; NN song-table values (mean-imputed); nn_fill=zero"
    for stem in ("song_length", "artist_song_cnt", "artist_rec_cnt", "song_rec_cnt", "yy"):
        for stat in ("mean", "std"):
            add(FeatureSpec(f"msno_{stem}_{stat}", "member_add", "BATCH", "user", _D, note=member_add_note))
    add(
        FeatureSpec(
            "artist_msno_cnt",
            "member_add",
            "BATCH",
            "user",
            _D,
            note=f"log1p distinct artists; {member_add_note}",
        )
    )
    add(*_song_meta())
    add(*_counts(("artist", "composer", "lyricist", "genre", "song"), "entity_counts"))
    add(
        FeatureSpec("cc", "isrc", "STATIC", "song", _I, "cc", note=f"{CODE_NOTE}; isrc[0:2]"),
        FeatureSpec("xxx", "isrc", "STATIC", "song", _I, "xxx", note=f"{CODE_NOTE}; isrc[2:5]"),
        FeatureSpec(
            "yy", "isrc", "STATIC", "song", _D, note="year of isrc[5:7]: 2000+yy if yy < 18 else 1900+yy"
        ),
    )
    add(*_counts(("cc", "xxx", "yy"), "isrc_counts"))
    add(
        *[
            FeatureSpec(n, "svd_song", "BATCH", "song", _F, note=_SVD_NOTE)
            for n in _component_names("song_component", shape.k_song)
        ]
    )
    add(
        *[
            FeatureSpec(n, "svd_song", "BATCH", "song", _F, note=f"{_SVD_NOTE}; null without artist")
            for n in _component_names("artist_component", shape.k_artist)
        ]
    )
    add(
        FeatureSpec("song_timestamp_mean", "time_stats", "BATCH", "song", _D),
        FeatureSpec("song_timestamp_std", "time_stats", "BATCH", "song", _D, note="ddof=1"),
    )
    base = dict(specs)
    for side, fam, horizon in (("before", "previous_song", "PAST"), ("after", "next_song", "FUTURE")):
        which = "previous" if side == "before" else "next"
        for name in _neighbour_names(side, shape):
            stem = name[len(side) + 1 :]
            origin = base[stem]
            batch = origin.horizon != "STATIC"
            tag = "FUTURE" if side == "after" else ("BATCH" if batch else horizon)
            note = f"{stem} of the user's {which} song (own song for the first/last event)"
            add(
                replace(
                    origin,
                    name=name,
                    family=fam,
                    horizon=tag,
                    entity="context",
                    in_nn=stem.startswith(("song_component_", "artist_component_")),
                    note=f"{note}; {origin.note}" if origin.note else note,
                )
            )
    add(
        FeatureSpec("before_type_same", "same_flags", "PAST", "context", _D),
        FeatureSpec("after_type_same", "same_flags", "FUTURE", "context", _D),
        FeatureSpec(
            "before_artist_same", "same_flags", "PAST", "context", _D, note="unknown artists compare equal"
        ),
        FeatureSpec(
            "after_artist_same", "same_flags", "FUTURE", "context", _D, note="unknown artists compare equal"
        ),
        FeatureSpec(
            "time_spent",
            "member_time",
            "PAST",
            "context",
            _I,
            note="timestamp - registration_init_time, int32",
        ),
        FeatureSpec(
            "time_left",
            "member_time",
            "STATIC",
            "context",
            _I,
            note="expiration_date - timestamp, int32; "
            "STATIC snapshot: the expiry date is a dump-time value (kept in serving)",
        ),
        FeatureSpec(
            "duration",
            "member_time",
            "STATIC",
            "user",
            _I,
            note="expiration_date - registration_init_time, int32",
        ),
    )
    # extra net inputs and catalogue columns outside the 388
    add(
        FeatureSpec("msno_code", "id_codes", "STATIC", "user", _I, "msno_code", in_nn=True, note=CODE_NOTE),
        FeatureSpec("song_code", "id_codes", "STATIC", "song", _I, "song_code", in_nn=True, note=CODE_NOTE),
        FeatureSpec(
            "second_genre_id", "song_metadata", "STATIC", "song", _I, "genre", in_nn=True, note=CODE_NOTE
        ),
        FeatureSpec("third_genre_id", "song_metadata", "STATIC", "song", _I, "genre", note=CODE_NOTE),
        FeatureSpec(
            "composer",
            "song_metadata",
            "STATIC",
            "song",
            _I,
            "composer",
            note=f"{CODE_NOTE}; first composer cut at '|' '/' '\\' ';'",
        ),
        FeatureSpec(
            "lyricist",
            "song_metadata",
            "STATIC",
            "song",
            _I,
            "lyricist",
            note=f"{CODE_NOTE}; first lyricist cut at '|' '/' '\\' ';'",
        ),
        FeatureSpec(
            "genre_id_cnt",
            "song_parsing",
            "STATIC",
            "song",
            _I,
            note="0 if genre_ids missing; null without metadata",
        ),
        FeatureSpec(
            "artist_cnt", "song_parsing", "STATIC", "song", _I, note="case-sensitive substring counts"
        ),
        FeatureSpec("is_featured", "song_parsing", "STATIC", "song", _I),
        FeatureSpec(
            "composer_cnt",
            "song_parsing",
            "STATIC",
            "song",
            _I,
            note="0 if composer missing; null without metadata",
        ),
        FeatureSpec(
            "lyricist_cnt",
            "song_parsing",
            "STATIC",
            "song",
            _I,
            note="0 if lyricist missing; null without metadata",
        ),
        FeatureSpec(
            "isrc_missing",
            "isrc",
            "STATIC",
            "song",
            _I,
            note="isrc IS NULL (thesis: cc == 0, which flags the first country under sklearn >= 0.24)",
        ),
        FeatureSpec(
            "song_id_missing",
            "song_metadata",
            "STATIC",
            "song",
            _I,
            note="song_length is null (the song has no songs.csv row)",
        ),
        FeatureSpec(
            "bd_missing",
            "member_static",
            "STATIC",
            "user",
            _I,
            note="bd is null after the age rule",
        ),
    )
    for c in range(10):
        add(
            FeatureSpec(
                f"msno_language_{c}",
                "member_add",
                "BATCH",
                "user",
                _D,
                note=f"share of language code {c}; {member_add_note}",
            )
        )
    gbdt = [n for n in gbdt_columns() if n in specs]
    ordered = gbdt + [n for n in specs if n not in set(gbdt)]
    return [_with_nn(specs[n]) for n in ordered]


def _with_nn(spec: FeatureSpec) -> FeatureSpec:
    name = spec.name
    share_nn = any(name == f"msno_{col}_{c}" for col, codes in _NN_SHARE_CODES.items() for c in codes)
    member_add = name.startswith("msno_") and name.endswith(("_mean", "_std")) and "timestamp" not in name
    nn = (
        spec.in_nn
        or name in _NN_CONTEXT
        or name in _NN_CATEGORICAL
        or name in _NN_SONG_FEAT
        or name in _NN_USER_FEAT
        or share_nn
        or member_add
        or name.startswith(
            ("member_component_", "member_artist_component_", "song_component_", "artist_component_")
        )
    )
    note = spec.note
    if (name in _NN_SONG_MEAN_FILL or name.startswith("artist_component_")) and nn:
        note = f"{note}; nn_fill=song_mean" if note else "nn_fill=song_mean"
    return replace(spec, in_nn=bool(nn), note=note)


def profile_specs(profile: str, shape: Shape = Shape()) -> list[FeatureSpec]:
    """The columns of ``profile``: full = :func:`catalogue`; serving = without FUTURE columns,
    BATCH re-tagged PAST (cumulative over earlier rows)."""
    specs = catalogue(shape)
    if profile == "full":
        return specs
    out = []
    for s in specs:
        if s.horizon == "FUTURE":
            continue
        if s.horizon == "BATCH":
            extra = _SVD_NOTE if s.family.startswith("svd") else _SERVING_CUMULATIVE
            note = s.note if s.family.startswith("svd") else (f"{s.note}; {extra}" if s.note else extra)
            s = replace(s, horizon="PAST", note=note)
        out.append(s)
    return out


def manifest_frame(
    spark: SparkSession,
    specs: list[FeatureSpec],
    schema: T.StructType,
    cardinalities: Mapping[str, int],
    profile: str,
) -> DataFrame:
    """The manifest rows (schemas.MANIFEST) of ``specs``; ``dtype`` from ``schema`` (the written
    features frame), ``cardinality`` from ``cardinalities[spec.codes]``."""
    gbdt = set(gbdt_columns())
    types = {f.name: f.dataType.simpleString() for f in schema.fields}
    rows = [
        (
            s.name,
            s.family,
            types.get(s.name, s.dtype),
            s.horizon,
            profile,
            s.entity,
            s.codes is not None,
            None if s.codes is None else int(cardinalities[s.codes]),
            s.name in gbdt,
            s.in_nn,
            s.note or None,
        )
        for s in specs
    ]
    return spark.createDataFrame(rows, schemas.MANIFEST)
