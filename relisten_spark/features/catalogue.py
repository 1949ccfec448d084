"""The feature catalogue: every output column of silver.features (full profile) with its family,
horizon, entity, code cardinality, model membership and deviations from the thesis code.

* ``in_gbdt``: one of the 388 LightGBM columns the thesis code trains on (:func:`gbdt_columns`,
  package data), which lead the catalogue in their order.
* ``in_nn`` / ``nn_fill``: the nets' inputs and their fills (:mod:`~relisten_spark.features.nn_inputs`).
  Numeric columns keep nulls (LightGBM handles them); the nets fill them at standardisation.
* ``svd_component``: the component index of an SVD factor column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import cache
from importlib import resources

from relisten_spark.features.nn_inputs import MEMBER_ADD_FAMILY, mark_nn_input
from relisten_spark.features.spec import Entity, FeatureSpec, Horizon, Shape

# the thesis code's LightGBM columns, in its order (package data, with its source in a header)
THESIS_LIGHTGBM_FILE = "thesis_lightgbm_388.txt"

# msno_source_{column}_{code}: the codes that get a share column (every KKBOX code, missing = 0)
SOURCE_SHARE_CODES: dict[str, tuple[int, ...]] = {
    "source_system_tab": tuple(range(10)),
    "source_screen_name": tuple(range(23)),
    "source_type": tuple(range(13)),
}
# the song-table columns of the previous / next song that the 388 list keeps, in its order (the
# next song's also has composer_song_cnt, after artist_song_cnt); the SVD components and the song
# time statistics follow them
_NEIGHBOUR_HEAD = (
    "song_length",
    "language",
    "first_genre_id",
    "artist_song_cnt",
    "genre_song_cnt",
    "song_rec_cnt",
    "artist_rec_cnt",
    "genre_rec_cnt",
    "cc",
)
SONG_TIME_STATS = ("song_timestamp_mean", "song_timestamp_std")
# msno_{stem}_mean / _std (member_add): the user's mean and std of these song values
MEMBER_ADD_STEMS = ("song_length", "artist_song_cnt", "artist_rec_cnt", "song_rec_cnt", "yy")
LANGUAGE_SHARE_CODES = tuple(range(10))

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
SERVING_CUMULATIVE_NOTE = "serving: cumulative over rows with a smaller idx"
_SVD_NOTE = (
    "serving: fit on the fit rows (train rows before the holdout cutoff); unseen entity -> zero vector"
)
_MISSING_NULL = (
    "missing key -> null count (thesis: 'code 0 -> null', which under sklearn >= 0.24 nulls a real group)"
)
# the "add" features' basis (FEATURES.md step 8)
_ADD_BASIS = "TP+T basis (train rows whose pair occurs in test not counted; every row gets a value)"
_MEMBER_ADD_NOTE = f"{_ADD_BASIS}; NN song-table values (mean-imputed)"
_EPOCH_NOTE = "epoch s of 00:00 UTC+8 (thesis: machine-local time.mktime)"
_SOURCES = ("source_system_tab", "source_screen_name", "source_type")

_D, _F, _I, _L = "double", "float", "int", "bigint"
STATIC, ROW, PAST, BATCH, FUTURE = Horizon
USER, SONG, CONTEXT = Entity


@cache
def _thesis_lightgbm_columns() -> tuple[str, ...]:
    text = (resources.files("relisten_spark") / "resources" / THESIS_LIGHTGBM_FILE).read_text("utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def gbdt_columns() -> list[str]:
    """The 388 LightGBM columns of the thesis code, in its order (package data
    ``relisten_spark/resources/thesis_lightgbm_388.txt``, whose header names the source).

    >>> cols = gbdt_columns()
    >>> len(cols), len(set(cols)), cols[:2]
    (388, 388, ['source_system_tab', 'source_screen_name'])
    """
    return list(_thesis_lightgbm_columns())


def neighbour_stems(side: str, shape: Shape) -> list[str]:
    """The song-table columns joined for the previous (``side="before"``) or next (``"after"``)
    song, written as ``<side>_<stem>``: the 388 list's choice plus the SVD components it drops
    (the nets' context branch takes all of them, FEATURES.md 3.2).

    >>> neighbour_stems("after", Shape(k_song=1, k_artist=1))[3:6]
    ['artist_song_cnt', 'composer_song_cnt', 'genre_song_cnt']
    """
    if side not in ("before", "after"):
        raise ValueError(f"neighbour side must be 'before' or 'after', got {side!r}")
    head = list(_NEIGHBOUR_HEAD)
    if side == "after":
        head.insert(4, "composer_song_cnt")
    return [
        *head,
        *[f"song_component_{j}" for j in range(shape.k_song)],
        *[f"artist_component_{j}" for j in range(shape.k_artist)],
        *SONG_TIME_STATS,
    ]


def _components(prefix: str, k: int, family: str, entity: Entity, note: str) -> list[FeatureSpec]:
    return [
        FeatureSpec(f"{prefix}_{j}", family, BATCH, entity, _F, svd_component=j, note=note) for j in range(k)
    ]


def _counts(prefixes: Iterable[str], family: str) -> list[FeatureSpec]:
    out = []
    for p in prefixes:
        for kind in ("rec",) if p == "song" else ("song", "rec"):
            note = "log1p" if p == "song" else f"log1p; {_MISSING_NULL}"
            out.append(FeatureSpec(f"{p}_{kind}_cnt", family, BATCH, SONG, _D, note=note))
    return out


def _event_specs(shape: Shape) -> list[FeatureSpec]:
    """The event's own columns: source codes and shares, SVD dots, time, counts and the
    previous / next event."""
    specs = [FeatureSpec(c, "context_codes", ROW, CONTEXT, _I, c, note=CODE_NOTE) for c in _SOURCES]
    row_counted = "P(x | user), row counted"
    specs += [
        FeatureSpec(f"msno_{c}_prob", "user_source_prob", BATCH, CONTEXT, _D, note=row_counted)
        for c in _SOURCES
    ]
    specs += [
        FeatureSpec("song_embeddings_dot", "svd_dot", BATCH, CONTEXT, _D, note=_SVD_NOTE),
        FeatureSpec("artist_embeddings_dot", "svd_dot", BATCH, CONTEXT, _D, note=_SVD_NOTE),
        FeatureSpec(
            "timestamp",
            "row_time",
            PAST,
            CONTEXT,
            _D,
            note="serving: train segment scaled to the "
            "train row count, test segment at the KKBOX test/train proportion",
        ),
        FeatureSpec("msno_till_now_cnt", "till_now", PAST, CONTEXT, _D, note="log1p"),
        FeatureSpec("song_till_now_cnt", "till_now", PAST, CONTEXT, _D, note="log1p"),
    ]
    for w in shape.windows:
        for key in ("msno", "song"):
            specs.append(
                FeatureSpec(f"{key}_{w}_before_cnt", "before_windows", PAST, CONTEXT, _D, note="log1p")
            )
            specs.append(
                FeatureSpec(f"{key}_{w}_after_cnt", "after_windows", FUTURE, CONTEXT, _D, note="log1p")
            )
    for side, horizon, family in (("before", PAST, "previous_event"), ("after", FUTURE, "next_event")):
        gap = "log1p gap; no neighbour -> mean over the row's split (serving: over the fit rows)"
        specs += [
            FeatureSpec(f"{side}_source_type", family, horizon, CONTEXT, _I, "source_type", note=CODE_NOTE),
            FeatureSpec(
                f"{side}_source_screen_name",
                family,
                horizon,
                CONTEXT,
                _I,
                "source_screen_name",
                note=CODE_NOTE,
            ),
            FeatureSpec(f"{side}_timestamp", family, horizon, CONTEXT, _D, note=gap),
            FeatureSpec(
                f"{side}_song_code",
                family,
                horizon,
                CONTEXT,
                _I,
                "song_code",
                in_nn=True,
                note=f"{CODE_NOTE}; the nets' {side}_song_id embedding index",
            ),
        ]
    for name in ("artist_name", "first_genre_id", "xxx", "language", "yy"):
        note = f"P(f | user); {_ADD_BASIS}"
        specs.append(FeatureSpec(f"msno_{name}_prob", "user_attr_prob", BATCH, CONTEXT, _D, note=note))
    specs += [
        FeatureSpec(
            "source",
            "add_source",
            ROW,
            CONTEXT,
            _I,
            "source",
            note=f"{CODE_NOTE}; fit on the fit rows (thesis: TP+T)",
        ),
        FeatureSpec(
            "msno_source_prob", "user_attr_prob", BATCH, CONTEXT, _D, note=f"P(source | user); {_ADD_BASIS}"
        ),
    ]
    note = f"P(c | song); {_ADD_BASIS}"
    specs += [
        FeatureSpec(f"song_{c}_prob", "song_source_prob", BATCH, CONTEXT, _D, note=note) for c in _SOURCES
    ]
    return specs


def _user_specs(shape: Shape) -> list[FeatureSpec]:
    """The user's columns: member metadata, activity, source shares, SVD factors, time
    statistics and the member_add aggregates."""
    static = "member_static"
    specs = [
        FeatureSpec("city", static, STATIC, USER, _I, "city", note=CODE_NOTE),
        FeatureSpec("bd", static, STATIC, USER, _D, note="null if bd <= 0 or bd >= 75"),
        FeatureSpec("gender", static, STATIC, USER, _I, "gender", note=CODE_NOTE),
        FeatureSpec("registered_via", static, STATIC, USER, _I, "registered_via", note=CODE_NOTE),
        FeatureSpec("registration_init_time", static, STATIC, USER, _L, note=_EPOCH_NOTE),
        FeatureSpec("expiration_date", static, STATIC, USER, _L, note=_EPOCH_NOTE),
        FeatureSpec("msno_rec_cnt", "user_activity", BATCH, USER, _D, note="log1p"),
    ]
    specs += [
        FeatureSpec(
            f"msno_{col}_{c}",
            "user_source_distribution",
            BATCH,
            USER,
            _D,
            note=f"share of the user's rows with code {c}; {SHARE_MAPPING_NOTE}",
        )
        for col, codes in SOURCE_SHARE_CODES.items()
        for c in codes
    ]
    specs += _components("member_component", shape.k_song, "svd_user", USER, _SVD_NOTE)
    specs += _components("member_artist_component", shape.k_artist, "svd_user", USER, _SVD_NOTE)
    specs += [
        FeatureSpec("msno_timestamp_mean", "time_stats", BATCH, USER, _D),
        FeatureSpec("msno_timestamp_std", "time_stats", BATCH, USER, _D, note="ddof=1"),
    ]
    specs += [
        FeatureSpec(f"msno_{stem}_{stat}", MEMBER_ADD_FAMILY, BATCH, USER, _D, note=_MEMBER_ADD_NOTE)
        for stem in MEMBER_ADD_STEMS
        for stat in ("mean", "std")
    ]
    note = f"log1p distinct artists; {_MEMBER_ADD_NOTE}"
    specs.append(FeatureSpec("artist_msno_cnt", MEMBER_ADD_FAMILY, BATCH, USER, _D, note=note))
    return specs


def _song_specs(shape: Shape) -> list[FeatureSpec]:
    """The song's columns: metadata, entity counts, ISRC parts and counts, SVD factors and time
    statistics."""
    meta = "song_metadata"
    specs = [
        FeatureSpec("song_length", meta, STATIC, SONG, _D, note="log1p(ms)"),
        FeatureSpec(
            "artist_name",
            meta,
            STATIC,
            SONG,
            _I,
            "artist_name",
            note=f"{CODE_NOTE}; missing artist -> 0 "
            "(thesis songs_gbdt: max+1); first artist cut at 'and' ',' ' feat' '&' (case-sensitive)",
        ),
        FeatureSpec("language", meta, STATIC, SONG, _I, "language", note=f"{CODE_NOTE}; -1 and missing -> 0"),
        FeatureSpec(
            "first_genre_id",
            meta,
            STATIC,
            SONG,
            _I,
            "genre",
            note=f"{CODE_NOTE}; joint genre encoder, 0 = no genre",
        ),
    ]
    specs += _counts(("artist", "composer", "lyricist", "genre", "song"), "entity_counts")
    specs += [
        FeatureSpec("cc", "isrc", STATIC, SONG, _I, "cc", note=f"{CODE_NOTE}; isrc[0:2]"),
        FeatureSpec("xxx", "isrc", STATIC, SONG, _I, "xxx", note=f"{CODE_NOTE}; isrc[2:5]"),
        FeatureSpec(
            "yy", "isrc", STATIC, SONG, _D, note="year of isrc[5:7]: 2000+yy if yy < 18 else 1900+yy"
        ),
    ]
    specs += _counts(("cc", "xxx", "yy"), "isrc_counts")
    specs += _components("song_component", shape.k_song, "svd_song", SONG, _SVD_NOTE)
    specs += _components(
        "artist_component", shape.k_artist, "svd_song", SONG, f"{_SVD_NOTE}; null without artist"
    )
    specs += [
        FeatureSpec("song_timestamp_mean", "time_stats", BATCH, SONG, _D),
        FeatureSpec("song_timestamp_std", "time_stats", BATCH, SONG, _D, note="ddof=1"),
    ]
    return specs


def _neighbour_specs(songs: Mapping[str, FeatureSpec], shape: Shape) -> list[FeatureSpec]:
    """The previous / next song's copies of the song columns ``songs[stem]``: STATIC values of
    the previous song stay PAST, its aggregates BATCH; every next-song column is FUTURE."""
    specs = []
    for side, family, which in (("before", "previous_song", "previous"), ("after", "next_song", "next")):
        for stem in neighbour_stems(side, shape):
            origin = songs[stem]
            horizon = FUTURE if side == "after" else (BATCH if origin.horizon != STATIC else PAST)
            note = f"{stem} of the user's {which} song (own song for the first/last event)"
            specs.append(
                replace(
                    origin,
                    name=f"{side}_{stem}",
                    family=family,
                    horizon=horizon,
                    entity=CONTEXT,
                    in_nn=origin.svd_component is not None,
                    note=f"{note}; {origin.note}" if origin.note else note,
                )
            )
    return specs


def _pair_specs() -> list[FeatureSpec]:
    """Columns comparing the event with its neighbours, and the member's time spans."""
    unknown_equal = "unknown artists compare equal"
    return [
        FeatureSpec("before_type_same", "same_flags", PAST, CONTEXT, _D),
        FeatureSpec("after_type_same", "same_flags", FUTURE, CONTEXT, _D),
        FeatureSpec("before_artist_same", "same_flags", PAST, CONTEXT, _D, note=unknown_equal),
        FeatureSpec("after_artist_same", "same_flags", FUTURE, CONTEXT, _D, note=unknown_equal),
        FeatureSpec(
            "time_spent", "member_time", PAST, CONTEXT, _I, note="timestamp - registration_init_time, int32"
        ),
        FeatureSpec(
            "time_left",
            "member_time",
            STATIC,
            CONTEXT,
            _I,
            note="expiration_date - timestamp, int32; "
            "STATIC snapshot: the expiry date is a dump-time value (kept in serving)",
        ),
        FeatureSpec(
            "duration",
            "member_time",
            STATIC,
            USER,
            _I,
            note="expiration_date - registration_init_time, int32",
        ),
    ]


def _outside_gbdt_specs() -> list[FeatureSpec]:
    """The extra net inputs and the catalogue columns that neither model uses."""
    meta, parsing = "song_metadata", "song_parsing"
    cut = "first {} cut at '|' '/' '\\' ';'"
    specs = [
        FeatureSpec("msno_code", "id_codes", STATIC, USER, _I, "msno_code", in_nn=True, note=CODE_NOTE),
        FeatureSpec("song_code", "id_codes", STATIC, SONG, _I, "song_code", in_nn=True, note=CODE_NOTE),
        FeatureSpec("second_genre_id", meta, STATIC, SONG, _I, "genre", in_nn=True, note=CODE_NOTE),
        FeatureSpec("third_genre_id", meta, STATIC, SONG, _I, "genre", note=CODE_NOTE),
        FeatureSpec(
            "composer", meta, STATIC, SONG, _I, "composer", note=f"{CODE_NOTE}; {cut.format('composer')}"
        ),
        FeatureSpec(
            "lyricist", meta, STATIC, SONG, _I, "lyricist", note=f"{CODE_NOTE}; {cut.format('lyricist')}"
        ),
        FeatureSpec(
            "genre_id_cnt", parsing, STATIC, SONG, _I, note="0 if genre_ids missing; null without metadata"
        ),
        FeatureSpec("artist_cnt", parsing, STATIC, SONG, _I, note="case-sensitive substring counts"),
        FeatureSpec("is_featured", parsing, STATIC, SONG, _I),
        FeatureSpec(
            "composer_cnt", parsing, STATIC, SONG, _I, note="0 if composer missing; null without metadata"
        ),
        FeatureSpec(
            "lyricist_cnt", parsing, STATIC, SONG, _I, note="0 if lyricist missing; null without metadata"
        ),
        FeatureSpec(
            "isrc_missing",
            "isrc",
            STATIC,
            SONG,
            _I,
            note="isrc IS NULL (thesis: cc == 0, which flags the first country under sklearn >= 0.24)",
        ),
        FeatureSpec(
            "song_id_missing",
            meta,
            STATIC,
            SONG,
            _I,
            note="song_length is null (the song has no songs.csv row)",
        ),
        FeatureSpec("bd_missing", "member_static", STATIC, USER, _I, note="bd is null after the age rule"),
    ]
    specs += [
        FeatureSpec(
            f"msno_language_{c}",
            MEMBER_ADD_FAMILY,
            BATCH,
            USER,
            _D,
            note=f"share of language code {c}; {_MEMBER_ADD_NOTE}",
        )
        for c in LANGUAGE_SHARE_CODES
    ]
    return specs


def catalogue(shape: Shape = Shape()) -> list[FeatureSpec]:
    """Every full-profile output column, the 388 LightGBM columns first (their order), then the
    extra net inputs, then catalogue columns that neither model uses."""
    specs: dict[str, FeatureSpec] = {}
    for group in (_event_specs(shape), _user_specs(shape), _song_specs(shape)):
        specs.update((s.name, s) for s in group)
    for group in (_neighbour_specs(specs, shape), _pair_specs(), _outside_gbdt_specs()):
        specs.update((s.name, s) for s in group)
    gbdt = [n for n in gbdt_columns() if n in specs]
    listed = set(gbdt)
    ordered = gbdt + [n for n in specs if n not in listed]
    return [mark_nn_input(specs[n]) for n in ordered]
