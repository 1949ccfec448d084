"""Label encodings, the member table and the song table (FEATURES.md step 1, step 7).

Code rule for every categorical code column (one rule, so the "code 0 = missing" logic of the
thesis pipeline holds by construction, FEATURES.md section 5 item 7):

* ``0``       missing (null raw value; language also maps ``-1`` here, genre slot 0 "no genre");
* ``1..n``    the sorted distinct non-null values of the *fit rows* (UTF-8 byte order, which is
  also Python's code-point order);
* ``n + 1``   a value unseen in the fit rows (only possible in the serving profile).

``cardinality = n + 2``. On the full KKBOX data this reproduces lystdo's encodings (py2 sorted
NaN first), e.g. source_screen_name codes 0..22 where 0 is NaN.

Entity *key* codes (``msno`` and ``song_id`` in the encoded events frame) are different: a dense
rank over every row's raw id, so that each entity keeps its own key in every profile. They are
partition keys, not features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from relisten_spark.runtime import checkpoint

MISSING_CODE = 0
UTC8_OFFSET_S = 8 * 3600
SOURCE_COLUMNS = ("source_system_tab", "source_screen_name", "source_type")
GENRE_SLOTS = ("first_genre_id", "second_genre_id", "third_genre_id")
ARTIST_SEPARATORS = ("and", ",", " feat", "&")
CREDIT_SEPARATORS = ("|", "/", "\\", ";")


@dataclass(frozen=True)
class LabelCodes:
    """A fitted label encoder.

    ``mapping`` is ``[value, code int]`` with codes ``1..size`` in sorted value order.
    """

    mapping: DataFrame
    size: int

    @property
    def unseen(self) -> int:
        """The reserved code of values not seen while fitting."""
        return self.size + 1

    @property
    def cardinality(self) -> int:
        """Number of codes including missing (0) and unseen (size + 1)."""
        return self.size + 2


_INTEGRAL = ("tinyint", "smallint", "int", "bigint")


def fit_many(values: DataFrame, encoders: Mapping[str, Sequence[str]]) -> dict[str, LabelCodes]:
    """Fit several encoders in one pass: ``encoders`` maps an encoder name to the columns of
    ``values`` whose non-null values it is fit on (one column usually; several for a joint
    encoder such as the three genre slots, which must share a type).

    Integer columns sort numerically, strings by UTF-8 bytes. The mappings are materialised
    (local checkpoint, lineage cut) so that later plans stay small; two Spark jobs in all.
    """
    types = {f.name: f.dataType.simpleString() for f in values.schema.fields}
    entries = []
    for name, columns in encoders.items():
        for column in columns:
            integral = types[column] in _INTEGRAL
            entries.append(
                F.struct(
                    F.lit(name).alias("enc"),
                    F.col(column).cast("string").alias("s"),
                    (F.col(column).cast("long") if integral else F.lit(None).cast("long")).alias("n"),
                )
            )
    stacked = (
        values.select(F.explode(F.array(*entries)).alias("_e")).select("_e.*").where(F.col("s").isNotNull())
    )
    order = Window.partitionBy("enc").orderBy("n", "s")
    mapping = stacked.distinct().select("enc", "s", "n", F.row_number().over(order).cast("int").alias("code"))
    mapping = checkpoint(mapping)
    sizes = {
        row["enc"]: int(row["size"])
        for row in mapping.groupBy("enc").agg(F.max("code").alias("size")).collect()
    }
    out = {}
    for name, columns in encoders.items():
        kind = types[columns[0]]
        value = F.col("n").cast(kind) if kind in _INTEGRAL else F.col("s")
        own = mapping.where(F.col("enc") == name).select(value.alias("value"), "code")
        out[name] = LabelCodes(own, sizes.get(name, 0))
    return out


def fit_codes(values: DataFrame, column: str) -> LabelCodes:
    """Fit codes ``1..n`` on the sorted distinct non-null values of ``values[column]``."""
    return fit_many(values, {column: [column]})[column]


def code_column(raw: Column, looked_up: Column, codes: LabelCodes) -> Column:
    """The code rule on a raw value and its (left-joined) fitted code."""
    return (
        F.when(raw.isNull(), F.lit(MISSING_CODE))
        .when(looked_up.isNull(), F.lit(codes.unseen))
        .otherwise(looked_up)
        .cast("int")
    )


def apply_codes(df: DataFrame, codes: LabelCodes, column: str, out: str) -> DataFrame:
    """``df`` + ``out`` int: the code of ``df[column]`` (broadcast lookup, every row kept).

    ``out`` may equal ``column`` (the raw column is then replaced).
    """
    value, code = f"_v_{out}", f"_c_{out}"
    dtype = df.schema[column].dataType  # saved encoders (silver.label_codes) keep values as strings
    lookup = F.broadcast(
        codes.mapping.select(F.col("value").cast(dtype).alias(value), F.col("code").alias(code))
    )
    joined = df.join(lookup, df[column] == F.col(value), "left")
    others = [F.col(c) for c in df.columns if c != out]
    return joined.select(*others, code_column(F.col(column), F.col(code), codes).alias(out))


def key_codes(values: DataFrame, columns: Mapping[str, str]) -> dict[str, DataFrame]:
    """Entity key codes: for each ``key -> column``, ``[column (raw), key int]`` numbering every
    distinct non-null raw value 1..m (all rows, not only fit rows; one fit, two jobs)."""
    fitted = fit_many(values, {key: [column] for key, column in columns.items()})
    return {
        key: fitted[key].mapping.select(F.col("value").alias(column), F.col("code").alias(key))
        for key, column in columns.items()
    }


def fit_rows(profile: str, cutoff: int | None) -> Column:
    """The rows every fit uses: full = train and test rows; serving = train rows before ``cutoff``."""
    if profile == "full":
        return F.col("split").isin("train", "test")
    return (F.col("split") == "train") & (F.col("idx") < F.lit(cutoff))


def flag_fit(keys: DataFrame, fit_ids: DataFrame, column: str) -> DataFrame:
    """``keys`` + ``_fit`` (bool): the key's raw ``column`` value occurs in ``fit_ids``."""
    marked = fit_ids.select(column).distinct().withColumn("_fit", F.lit(True))
    return keys.join(F.broadcast(marked), column, "left").fillna(False, ["_fit"])


# ---- events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EventCodes:
    """The fitted encoders of the event columns."""

    sources: dict[str, LabelCodes]


def fit_event_codes(events: DataFrame, fit: Column) -> EventCodes:
    """Fit the three source encoders on the fit rows of bronze ``events``."""
    return EventCodes(fit_many(events.where(fit), {c: [c] for c in SOURCE_COLUMNS}))


def _source_triple() -> Column:
    return (
        F.col("source_system_tab").cast("long") * 10000
        + F.col("source_screen_name").cast("long") * 100
        + F.col("source_type").cast("long")
    )


def fit_source_codes(ev: DataFrame, fit: Column) -> LabelCodes:
    """Fit the ``source`` encoder on the code triples of the fit rows of ``ev`` (encoded events)."""
    return fit_codes(ev.where(fit).select(_source_triple().alias("_triple")), "_triple")


def add_source(ev: DataFrame, codes: LabelCodes) -> DataFrame:
    """``ev`` + ``source`` (int): the code of source_system_tab*10000 + source_screen_name*100 +
    source_type (the source codes of the row). ROW."""
    with_triple = ev.withColumn("_triple", _source_triple())
    return apply_codes(with_triple, codes, "_triple", "source").drop("_triple")


def encode_events(
    events: DataFrame, user_keys: DataFrame, song_keys: DataFrame, codes: EventCodes
) -> DataFrame:
    """The encoded events frame of the F-seq interface.

    ``events``: bronze ``[idx, msno, song_id, source_*, target, split]`` (raw strings).
    ``user_keys``: ``[msno (raw), _user int]``; ``song_keys``: ``[song_id (raw), _song int]``.
    Returns ``[idx long, msno int, song_id int, source_system_tab int, source_screen_name int,
    source_type int, split string, target int]`` where msno / song_id are the key codes.
    """
    users = F.broadcast(user_keys.select(F.col("msno").alias("_raw_user"), "_user"))
    songs = F.broadcast(song_keys.select(F.col("song_id").alias("_raw_song"), "_song"))
    df = events.join(users, events["msno"] == F.col("_raw_user"), "left").join(
        songs, events["song_id"] == F.col("_raw_song"), "left"
    )
    for column in SOURCE_COLUMNS:
        df = apply_codes(df, codes.sources[column], column, column)
    return df.select(
        F.col("idx").cast("long").alias("idx"),
        F.col("_user").alias("msno"),
        F.col("_song").alias("song_id"),
        *[F.col(c) for c in SOURCE_COLUMNS],
        F.col("split"),
        F.col("target").cast("int").alias("target"),
    )


# ---- members --------------------------------------------------------------------------


def yyyymmdd_to_epoch(column: Column) -> Column:
    """A YYYYMMDD int as epoch seconds of 00:00 UTC+8 that day (long); invalid -> null."""
    day = F.try_to_date(column.cast("string"), "yyyyMMdd")
    return (F.datediff(day, F.lit("1970-01-01")).cast("long") * 86400 - UTC8_OFFSET_S).cast("long")


def clean_bd(column: Column) -> Column:
    """Age with the thesis rule: null when bd <= 0 or bd >= 75 (FEATURES.md step 2)."""
    return F.when((column > 0) & (column < 75), column.cast("double"))


MEMBER_ENCODERS = ("msno_code", "city", "gender", "registered_via")


@dataclass(frozen=True)
class _Codes:
    """Fitted encoders of one table, a field each."""

    def by_name(self) -> dict[str, LabelCodes]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class MemberCodes(_Codes):
    """Fitted encoders of the member table (the fields: :data:`MEMBER_ENCODERS`)."""

    msno_code: LabelCodes
    city: LabelCodes
    gender: LabelCodes
    registered_via: LabelCodes


def _with_members(users: DataFrame, members: DataFrame) -> DataFrame:
    return users.join(members.dropDuplicates(["msno"]), "msno", "left")


def fit_member_codes(users: DataFrame, members: DataFrame) -> MemberCodes:
    """Fit msno_code, city, gender and registered_via on the members of the fit users.

    ``users``: ``[msno (raw), _fit bool, ...]`` (every user of the events; ``_fit`` = the user has
    a fit row); ``members``: bronze members."""
    fit_users = _with_members(users, members).where("_fit")
    encoders = {"msno_code": ["msno"], **{c: [c] for c in MEMBER_ENCODERS[1:]}}
    return MemberCodes(**fit_many(fit_users, encoders))


def member_table(users: DataFrame, members: DataFrame, codes: MemberCodes) -> DataFrame:
    """One row per user with the static member features.

    ``users``: ``[msno (raw), (_user int)]``. Returns ``[msno, (_user), msno_code, city, bd,
    bd_missing, gender, registered_via, registration_init_time, expiration_date, duration]``;
    users absent from members get code 0 and null numbers.
    """
    table = _with_members(users, members)
    table = apply_codes(table, codes.msno_code, "msno", "msno_code")
    for column in MEMBER_ENCODERS[1:]:
        table = apply_codes(table, getattr(codes, column), column, column)
    reg = yyyymmdd_to_epoch(F.col("registration_init_time"))
    exp = yyyymmdd_to_epoch(F.col("expiration_date"))
    bd = clean_bd(F.col("bd"))
    return table.select(
        *[c for c in ("msno", "_user") if c in users.columns],
        "msno_code",
        "city",
        bd.alias("bd"),
        bd.isNull().cast("int").alias("bd_missing"),
        "gender",
        "registered_via",
        reg.alias("registration_init_time"),
        exp.alias("expiration_date"),
        (exp - reg).try_cast("int").alias("duration"),
    )


# ---- songs ----------------------------------------------------------------------------


def substring_count(text: Column, needle: str) -> Column:
    """Non-overlapping, case-sensitive occurrences of ``needle`` in ``text`` (Python str.count)."""
    removed = F.length(F.replace(text, F.lit(needle), F.lit("")))
    return ((F.length(text) - removed) / len(needle)).cast("int")


def strip(text: Column) -> Column:
    """Python's ``str.strip()`` for ASCII whitespace."""
    return F.regexp_replace(text, r"^\s+|\s+$", "")


def first_token(text: Column, separators: Sequence[str]) -> Column:
    """Cut before the first separator, each in turn on the previous result, then strip."""
    out = text
    for sep in separators:
        out = F.substring_index(out, sep, 1)
    return strip(out)


def parse_songs(songs: DataFrame) -> DataFrame:
    """Step 1 parsing of bronze ``songs`` (raw values, before encoding).

    Returns ``[song_id (raw), song_length double (log1p ms), genre_1/2/3 int (0 = none),
    genre_id_cnt int, artist_raw, artist_cnt int, is_featured int, composer_raw, composer_cnt int,
    lyricist_raw, lyricist_cnt int, language_raw int (null or -1 -> null)]``.
    """
    tokens = F.split(F.col("genre_ids"), r"\|")
    genre = [F.coalesce(F.try_element_at(tokens, F.lit(i + 1)).try_cast("int"), F.lit(0)) for i in range(3)]
    artist = F.col("artist_name")
    artist_cnt = sum((substring_count(artist, s) for s in ARTIST_SEPARATORS), F.lit(0)) + 1

    def credit_cnt(column: str) -> Column:
        text = F.col(column)
        return F.when(text.isNull(), F.lit(0)).otherwise(
            sum((substring_count(text, s) for s in CREDIT_SEPARATORS), F.lit(0)) + 1
        )

    return songs.dropDuplicates(["song_id"]).select(
        "song_id",
        F.log1p(F.col("song_length").cast("double")).alias("song_length"),
        *[
            F.when(F.col("genre_ids").isNull(), F.lit(0)).otherwise(g).alias(f"genre_{i + 1}")
            for i, g in enumerate(genre)
        ],
        F.when(F.col("genre_ids").isNull(), F.lit(0))
        .otherwise(F.size(tokens))
        .cast("int")
        .alias("genre_id_cnt"),
        first_token(artist, ARTIST_SEPARATORS).alias("artist_raw"),
        artist_cnt.cast("int").alias("artist_cnt"),
        F.when(artist.isNull(), None).otherwise(artist.contains(" feat").cast("int")).alias("is_featured"),
        first_token(F.col("composer"), CREDIT_SEPARATORS).alias("composer_raw"),
        credit_cnt("composer").cast("int").alias("composer_cnt"),
        first_token(F.col("lyricist"), CREDIT_SEPARATORS).alias("lyricist_raw"),
        credit_cnt("lyricist").cast("int").alias("lyricist_cnt"),
        F.when(F.col("language") == -1, None).otherwise(F.col("language")).cast("int").alias("language_raw"),
        F.lit(True).alias("_has_meta"),
    )


SONG_ENCODERS = ("song_code", "artist_name", "composer", "lyricist", "genre", "language", "cc", "xxx")
# encoder -> raw column of the song rows (genre: the joint encoder of the three slots)
_SONG_RAW = {
    "artist_name": "artist_raw",
    "composer": "composer_raw",
    "lyricist": "lyricist_raw",
    "language": "language_raw",
    "cc": "cc_raw",
    "xxx": "xxx_raw",
}
_GENRE_RAW = ("genre_1", "genre_2", "genre_3")


@dataclass(frozen=True)
class SongCodes(_Codes):
    """Fitted encoders of the song table (the fields: :data:`SONG_ENCODERS`; genre is one joint
    encoder over the three slots)."""

    song_code: LabelCodes
    artist_name: LabelCodes
    composer: LabelCodes
    lyricist: LabelCodes
    genre: LabelCodes
    language: LabelCodes
    cc: LabelCodes
    xxx: LabelCodes


# song-table key columns of the count families (hashes of the raw values, null = missing)
COUNT_KEYS = {
    "artist": "_k_artist",
    "composer": "_k_composer",
    "lyricist": "_k_lyricist",
    "genre": "_k_genre",
}


def song_rows(song_keys: DataFrame, songs: DataFrame, song_extra: DataFrame) -> DataFrame:
    """The parsed raw song attributes (steps 1 and 3, before encoding) of every song of
    ``song_keys`` ``[song_id (raw), (_song int, _fit bool)]``, materialised (local checkpoint)."""
    from relisten_spark.features.isrc import parse_isrc

    table = song_keys.join(parse_songs(songs), "song_id", "left").join(
        parse_isrc(song_extra), "song_id", "left"
    )
    for slot in _GENRE_RAW:  # genre 0 ("no genre") is the missing code
        table = table.withColumn(slot, F.when(F.col(slot) != 0, F.col(slot)))
    return checkpoint(table)


def fit_song_codes(rows: DataFrame) -> SongCodes:
    """Fit the song encoders on the songs of the fit rows (``_fit``) of :func:`song_rows`."""
    fitted = fit_many(
        rows.where("_fit"),
        {"song_code": ["song_id"], "genre": list(_GENRE_RAW), **{k: [v] for k, v in _SONG_RAW.items()}},
    )
    return SongCodes(**fitted)


def song_table(rows: DataFrame, codes: SongCodes) -> DataFrame:
    """One row per song of :func:`song_rows` with the static song features (steps 1, 3 and the
    step-7 flags).

    Returns ``[song_id (raw), (_song), song_code, song_length, song_id_missing,
    first/second/third_genre_id, genre_id_cnt, artist_name, artist_cnt, is_featured, composer,
    composer_cnt, lyricist, lyricist_cnt, language, cc, xxx, yy, isrc_missing, _k_artist,
    _k_composer, _k_lyricist, _k_genre, _k_cc, _k_xxx]``. ``_k_*`` are 64-bit hashes of the raw
    attribute (null when missing) used as count keys (equality only; a collision among ~10^5
    values has probability ~10^-9).
    """
    from relisten_spark.features.isrc import isrc_missing

    key_columns = {
        "_k_artist": "artist_raw",
        "_k_composer": "composer_raw",
        "_k_lyricist": "lyricist_raw",
        "_k_cc": "cc_raw",
        "_k_xxx": "xxx_raw",
    }
    table = apply_codes(rows, codes.song_code, "song_id", "song_code")
    for out, column in _SONG_RAW.items():
        table = apply_codes(table, getattr(codes, out), column, out)
    for slot, out in zip(_GENRE_RAW, GENRE_SLOTS, strict=True):
        table = apply_codes(table, codes.genre, slot, out)
    for key, column in key_columns.items():
        table = table.withColumn(key, F.when(F.col(column).isNotNull(), F.xxhash64(column)))
    return table.select(
        *[c for c in ("song_id", "_song") if c in rows.columns],
        "song_code",
        "song_length",
        F.col("song_length").isNull().cast("int").alias("song_id_missing"),
        *GENRE_SLOTS,
        "genre_id_cnt",
        "artist_name",
        "artist_cnt",
        "is_featured",
        "composer",
        "composer_cnt",
        "lyricist",
        "lyricist_cnt",
        "language",
        "cc",
        "xxx",
        "yy",
        isrc_missing(F.col("isrc")).alias("isrc_missing"),
        "_k_artist",
        "_k_composer",
        "_k_lyricist",
        F.col("genre_1").alias("_k_genre"),
        "_k_cc",
        "_k_xxx",
    )
