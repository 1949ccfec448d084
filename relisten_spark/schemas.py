"""Every fixed table's schema, declared once.

``silver.features`` is the exception: its columns come from the feature manifest
(:data:`MANIFEST` rows), so only its key columns are declared here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import types as T

_S, _I, _L, _D, _B = T.StringType(), T.IntegerType(), T.LongType(), T.DoubleType(), T.BooleanType()


def _struct(*fields: tuple[str, T.DataType]) -> T.StructType:
    return T.StructType([T.StructField(name, dtype, True) for name, dtype in fields])


# ---- bronze ---------------------------------------------------------------------------
EVENTS = _struct(
    ("idx", _L),
    ("msno", _S),
    ("song_id", _S),
    ("source_system_tab", _S),
    ("source_screen_name", _S),
    ("source_type", _S),
    ("target", _I),
    ("split", _S),
)
MEMBERS = _struct(
    ("msno", _S),
    ("city", _I),
    ("bd", _I),
    ("gender", _S),
    ("registered_via", _I),
    ("registration_init_time", _I),
    ("expiration_date", _I),
)
SONGS = _struct(
    ("song_id", _S),
    ("song_length", _L),
    ("genre_ids", _S),
    ("artist_name", _S),
    ("composer", _S),
    ("lyricist", _S),
    ("language", _I),
)
SONG_EXTRA = _struct(("song_id", _S), ("name", _S), ("isrc", _S))
QUARANTINE = _struct(
    ("file", _S),
    ("line_number", _L),
    ("raw", _S),
    ("reason", _S),
    ("run_id", _S),
)

# ---- silver ---------------------------------------------------------------------------
FEATURE_KEYS = _struct(
    ("idx", _L),
    ("msno", _S),
    ("song_id", _S),
    ("split", _S),
    ("target", _I),
    ("profile", _S),
)
MANIFEST = _struct(
    ("name", _S),
    ("family", _S),
    ("dtype", _S),
    ("horizon", _S),
    ("profile", _S),
    ("entity", _S),
    ("categorical", _B),
    ("cardinality", _I),
    ("in_gbdt", _B),
    ("in_nn", _B),
    ("note", _S),
    ("nn_fill", _S),
    ("svd_component", _I),
)
# the feature job's fitted label encoders: per encoder its values (as strings) and their codes, plus
# one row (value null, code 0) for the missing code
LABEL_CODES = _struct(
    ("profile", _S),
    ("encoder", _S),
    ("value", _S),
    ("code", _I),
)

# each user's candidate songs for scoring (``relisten candidates``), one partition per run date
CANDIDATES = _struct(
    ("run_date", T.DateType()),
    ("msno", _S),
    ("song_id", _S),
    ("source", _S),
    ("rank", _I),
    ("score", _D),
)

# the retriever's stage-2 teacher lists (``relisten finetune-retriever``)
RETRIEVER_TEACHER = _struct(
    ("msno", _S),
    ("song_id", _S),
    ("retriever_rank", _I),
    ("retriever_logit", _D),
    ("ranker_score", _D),
    ("part", _S),
)

# ---- gold -----------------------------------------------------------------------------
PREDICTIONS = _struct(
    ("run_id", _S),
    ("model", _S),
    ("model_version", _S),
    ("profile", _S),
    ("split_mode", _S),
    ("eval_split", _S),
    ("idx", _L),
    ("msno", _S),
    ("song_id", _S),
    ("target", _I),
    ("score", _D),
    ("logit", _D),
)
METRICS = _struct(
    ("run_id", _S),
    ("model", _S),
    ("profile", _S),
    ("split", _S),
    ("metric", _S),
    ("value", _D),
    ("split_mode", _S),
)
# one reason of a recommendation: a feature family's code, its text, and the share of the
# LightGBM score it explains (its contribution / the sum of |contribution| over all families)
REASON = _struct(("code", _S), ("text", _S), ("weight", _D))
RECS = _struct(
    ("run_date", T.DateType()),
    ("msno", _S),
    ("rank", _I),
    ("song_id", _S),
    ("score", _D),
    ("model_version", _S),
    ("reasons", T.ArrayType(REASON)),
)
# gold.recs_<surface>_enriched: RECS with the song's name, artist, genre ids and language, and
# the reasons as one readable string (``why``)
RECS_ENRICHED = _struct(
    ("run_date", T.DateType()),
    ("msno", _S),
    ("rank", _I),
    ("song_id", _S),
    ("song_name", _S),
    ("artist_name", _S),
    ("genre_ids", T.ArrayType(_S)),
    ("language", _I),
    ("score", _D),
    ("model_version", _S),
    ("reasons", T.ArrayType(REASON)),
    ("why", _S),
)
RUNS = _struct(
    ("run_id", _S),
    ("command", _S),
    ("started_at", T.TimestampType()),
    ("finished_at", T.TimestampType()),
    ("config_hash", _S),
    ("model_versions", T.MapType(_S, _S)),
    ("input_versions", T.MapType(_S, _L)),
    ("row_counts", T.MapType(_S, _L)),
    ("timings_s", T.MapType(_S, _D)),
    ("status", _S),
    ("message", _S),
)
# <layer>._commits: one row per stage run that committed all its tables (relisten_spark.commits);
# readers see a table version written by a stage run only once its row is here
STAGE_COMMITS = _struct(
    ("stage_run_id", _S),
    ("stage", _S),
    ("scope", _S),
    ("versions", T.MapType(_S, _L)),
    ("inputs", T.MapType(_S, _S)),
    ("config_hash", _S),
    ("committed_at", T.TimestampType()),
)


# ---- descriptions -----------------------------------------------------------------------
# Every table's description and its columns' comments, declared once: the lake writes them into
# each Delta table's metadata at create (``description``, field metadata ``comment``) and
# TABLES.md is generated from them (``python -m relisten_spark.tables_doc``).


@dataclass(frozen=True)
class TableDoc:
    """One table (or one family of tables: ``{surface}`` stands for any product surface, ``{layer}``
    for any layer): its description, its schema when fixed, its partition columns and the comment
    of each documented column."""

    name: str
    description: str
    schema: T.StructType | None
    columns: Mapping[str, str]
    partition_by: tuple[str, ...] = ()

    def comment(self, column: str) -> str | None:
        return self.columns.get(column)


# the columns that mean the same in every table that has them
_COMMON = {
    "idx": "the event's position in the KKBOX log (train rows first, then test rows)",
    "msno": "member (user) id",
    "song_id": "song id",
    "target": "1 when the member listened to the song again within a month, 0 if not (null on test rows)",
    "split": "train or test (the KKBOX file the event came from)",
    "profile": "feature profile: full (the thesis's aggregates) or serving (point-in-time)",
    "run_id": "the run that wrote the row (a gold.runs run_id)",
    "model_version": "registry version of the model that produced the score",
    "score": "predicted probability of a repeat listen",
    "run_date": "the date the recommendations are for (partition)",
    "rank": "1 = best",
    "reasons": "the three feature families that raised the LightGBM score most: code, text, weight (the "
    "share of the score explained: the family's contribution / the sum of |contribution| of all families)",
}


def _doc(
    name: str,
    description: str,
    schema: T.StructType | None,
    partition_by: tuple[str, ...] = (),
    /,
    **columns: str,
) -> TableDoc:
    """A TableDoc whose comments are ``columns`` over the common ones (of the schema's columns)."""
    names = schema.fieldNames() if schema is not None else list(columns)
    common = {c: _COMMON[c] for c in names if c in _COMMON}
    return TableDoc(name, description, schema, {**common, **columns}, partition_by)


_RECS_COLUMNS = {"rank": "the song's rank in the member's list (1 = best)"}
TABLES: tuple[TableDoc, ...] = (
    _doc(
        "bronze.events",
        "Listening events of the KKBOX train and test logs, one row per (member, song) event, in log order.",
        EVENTS,
        source_system_tab="tab of the app the event came from",
        source_screen_name="screen of the app the event came from",
        source_type="entry point the song was played from",
    ),
    _doc(
        "bronze.members",
        "Members (users) with their profile at registration.",
        MEMBERS,
        city="city code",
        bd="age (0 or out of range: unknown)",
        gender="male, female or null",
        registered_via="registration method code",
        registration_init_time="registration date as yyyymmdd",
        expiration_date="membership expiry date as yyyymmdd",
    ),
    _doc(
        "bronze.songs",
        "Songs of the catalogue.",
        SONGS,
        song_length="length in milliseconds",
        genre_ids="genre ids separated by |",
        artist_name="performing artist(s), separated by |",
        composer="composer(s), separated by |",
        lyricist="lyricist(s), separated by |",
        language="language code",
    ),
    _doc(
        "bronze.song_extra",
        "Song names and ISRC codes.",
        SONG_EXTRA,
        name="song title",
        isrc="International Standard Recording Code (country, registrant, year, id)",
    ),
    _doc(
        "bronze.quarantine",
        "Input lines that could not be parsed, with the reason; the rest of the file is ingested.",
        QUARANTINE,
        file="source CSV file",
        line_number="line in the file (1 = header)",
        raw="the line as read",
        reason="why it was rejected",
    ),
    _doc(
        "silver.features",
        "One row per event with its features, one partition per profile; the feature columns are "
        "listed with their family, type and horizon in silver.feature_manifest.",
        FEATURE_KEYS,
        ("profile",),
    ),
    _doc(
        "silver.feature_manifest",
        "The typed contract of silver.features: one row per feature column of a profile.",
        MANIFEST,
        ("profile",),
        name="feature column name in silver.features",
        family="feature family (the module that computes it)",
        dtype="Spark type of the column",
        horizon="which events the feature may see (e.g. past only)",
        entity="entity the feature describes (member, song, pair, ...)",
        categorical="true for label-encoded categorical columns",
        cardinality="number of codes of a categorical column",
        in_gbdt="taken by LightGBM",
        in_nn="taken by the neural nets",
        note="free-text note",
        nn_fill="how the nets fill a missing value",
        svd_component="SVD component index of a factor column",
    ),
    _doc(
        "silver.label_codes",
        "The feature job's fitted label encoders (value -> code), read back by scoring; code 0 is "
        "the missing value.",
        LABEL_CODES,
        ("profile",),
        encoder="encoded column",
        value="raw value as a string (null for the missing code)",
        code="integer code",
    ),
    _doc(
        "silver.svd_member",
        "Member factors of the member x song SVD, per profile.",
        None,
        ("profile",),
        profile=_COMMON["profile"],
        msno=_COMMON["msno"],
    ),
    _doc(
        "silver.svd_song",
        "Song factors of the member x song SVD, per profile.",
        None,
        ("profile",),
        profile=_COMMON["profile"],
        song_id=_COMMON["song_id"],
    ),
    _doc(
        "silver.svd_member_artist",
        "Member factors of the member x artist SVD, per profile.",
        None,
        ("profile",),
        profile=_COMMON["profile"],
        msno=_COMMON["msno"],
    ),
    _doc(
        "silver.svd_artist",
        "Artist factors of the member x artist SVD, per profile.",
        None,
        ("profile",),
        profile=_COMMON["profile"],
    ),
    _doc(
        "silver.svd_values",
        "Singular values of each SVD, per profile.",
        None,
        ("profile",),
        profile=_COMMON["profile"],
        matrix="which SVD",
        component="component index",
        value="singular value",
    ),
    _doc(
        "silver.candidates",
        "Each member's scoring.candidates candidate songs (relisten candidates), from the sources of "
        "scoring.candidate_sources, one partition per run date; a rerun of a date replaces it atomically.",
        CANDIDATES,
        ("run_date",),
        run_date="the date the candidates are for (partition)",
        source="where the song came from: retriever, svd, als or popular",
        rank="the song's rank in the member's candidate list (1 = best)",
        score="the source's own score (dot product, or plays for popular): comparable within a source only",
    ),
    _doc(
        "silver.retriever_teacher",
        "The stage-1 retriever's top-M songs of a sample of training-period members as of the holdout "
        "cutoff, each scored by the serving ranker as of that cutoff (relisten finetune-retriever); "
        "replaced by every run.",
        RETRIEVER_TEACHER,
        retriever_rank="the song's rank in the stage-1 retriever's list (1 = best)",
        retriever_logit="the stage-1 retriever's score (user vector . item vector)",
        ranker_score="the serving stack's probability of a re-listen, features as of the cutoff",
        part="train (fine-tuning) or holdout (the agreement measure)",
    ),
    _doc(
        "gold.predictions",
        "Holdout scores of every trained model, one row per (run, model, event).",
        PREDICTIONS,
        model="model name (lightgbm, jenn, felu_net, stack, popularity)",
        split_mode="holdout protocol the split follows",
        eval_split="split the row belongs to (calib, eval, test)",
        logit="the score's logit, clipped",
    ),
    _doc(
        "gold.metrics",
        "Evaluation metrics of every model, per profile and split.",
        METRICS,
        model="model name",
        split="evaluation split",
        metric="metric name (e.g. auc, logloss)",
        value="metric value",
        split_mode="holdout protocol the split follows",
    ),
    _doc(
        "gold.recs_{surface}",
        "Top-N songs per member for one product surface, one partition per run date; a rerun of a "
        "date replaces that partition atomically.",
        RECS,
        ("run_date",),
        **_RECS_COLUMNS,
    ),
    _doc(
        "gold.recs_{surface}_enriched",
        "gold.recs_{surface} with the song's name, artist, genres and language, and the reasons as "
        "one readable line.",
        RECS_ENRICHED,
        ("run_date",),
        **_RECS_COLUMNS,
        song_name="song title",
        artist_name="performing artist(s)",
        genre_ids="genre ids",
        language="language code",
        why="the reasons as one readable line",
    ),
    _doc(
        "gold.runs",
        "One row per stage run: its config hash, model and input versions, row counts, timings and outcome.",
        RUNS,
        command="the relisten command",
        started_at="start time (UTC)",
        finished_at="end time (UTC)",
        config_hash="digest of the effective config",
        model_versions="model name -> registry version used or written",
        input_versions="input table -> Delta version read",
        row_counts="counts from the stage's summary",
        timings_s="phase -> seconds",
        status="succeeded or failed",
        message="the error of a failed run",
    ),
    _doc(
        "{layer}._commits",
        "One row per stage run that committed all its tables; readers see a stage run's table "
        "versions only once its row is here.",
        STAGE_COMMITS,
        stage_run_id="the stage run (a gold.runs run_id)",
        stage="the stage",
        scope="what the run replaced (e.g. run_date=2026-11-23)",
        versions="table -> version the run committed",
        inputs="input -> fingerprint",
        config_hash="digest of the effective config",
        committed_at="commit time (UTC)",
    ),
)


def _pattern(name: str) -> re.Pattern[str]:
    parts = re.split(r"\{(?:surface|layer)\}", name)
    return re.compile("[^./]+".join(re.escape(p) for p in parts))


def table_doc(path: str) -> TableDoc | None:
    """The TableDoc of the table at ``<root>/<layer>/<table>`` (None: an undocumented table); the
    most specific name wins (``recs_{surface}_enriched`` before ``recs_{surface}``).

    >>> table_doc("lakehouse/gold/recs_story").name
    'gold.recs_{surface}'
    >>> table_doc("lakehouse/gold/recs_story_enriched").name
    'gold.recs_{surface}_enriched'
    """
    key = ".".join(path.rstrip("/").split("/")[-2:])
    for doc in sorted(TABLES, key=lambda d: ("{" in d.name, -len(d.name))):
        if _pattern(doc.name).fullmatch(key):
            return doc
    return None
