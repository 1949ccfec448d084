"""Every fixed table's schema, declared once.

``silver.features`` is the exception: its columns come from the feature manifest
(:data:`MANIFEST` rows), so only its key columns are declared here.
"""

from __future__ import annotations

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
RECS = _struct(
    ("run_date", _S),
    ("msno", _S),
    ("rank", _I),
    ("song_id", _S),
    ("score", _D),
    ("model_version", _S),
    ("reasons", T.ArrayType(_S)),
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
