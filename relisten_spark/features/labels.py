"""Human labels of the feature families: the reasons a recommendation gives and the names the
evaluation report shows.

Every column of the catalogue maps to one :class:`Reason` (a stable ``code`` and a short
``text``) through its family (:data:`FAMILY_REASONS`); a few families split by what a column
describes (the user's or the song's side, or the attribute a user share is of:
:data:`COLUMN_REASONS`, matched on the column's name). The SVD factors of users, songs and
artists and their dot products fold into one reason, ``taste_match``.

Pure Python (no Spark): the scoring tasks read it in their Python workers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from relisten_spark.features.catalogue import catalogue


@dataclass(frozen=True)
class Reason:
    """``code``: a stable identifier of the reason; ``text``: what a person reads."""

    code: str
    text: str


REASONS: dict[str, str] = {
    "artist_affinity": "you often play this artist",
    "genre_affinity": "you often play this genre",
    "language_affinity": "in a language you play",
    "era_affinity": "from the years you play",
    "label_affinity": "from a record label you play",
    "taste_match": "listeners like you play it",
    "recent_popularity": "popular in the last days",
    "popularity": "popular overall",
    "context_fit": "fits the surface's context",
    "source_habit": "you often listen from this surface",
    "song_context": "often played from this surface",
    "your_activity": "how much you listen",
    "your_profile": "your member profile",
    "your_habits": "matches the songs you usually play",
    "listening_time": "the time you listen",
    "song_age": "when the song is played in the log",
    "follows_last_play": "follows what you just played",
    "before_next_play": "leads into what you play next",
    "song_artist": "its artist",
    "song_genre": "its genre",
    "song_language": "its language",
    "song_traits": "the song's length and metadata",
    "release": "its release (country, label, year)",
    "credits": "the song's credits",
    "identity": "this user or song itself",
}

FAMILY_REASONS: dict[str, str] = {
    "context_codes": "context_fit",
    "add_source": "context_fit",
    "user_source_prob": "source_habit",
    "user_source_distribution": "source_habit",
    "song_source_prob": "song_context",
    "svd_dot": "taste_match",
    "svd_user": "taste_match",
    "svd_song": "taste_match",
    "row_time": "listening_time",
    "member_time": "listening_time",
    "till_now": "popularity",
    "before_windows": "recent_popularity",
    "after_windows": "before_next_play",
    "previous_event": "follows_last_play",
    "previous_song": "follows_last_play",
    "next_event": "before_next_play",
    "next_song": "before_next_play",
    "user_attr_prob": "artist_affinity",
    "member_static": "your_profile",
    "user_activity": "your_activity",
    "time_stats": "song_age",
    "member_add": "your_habits",
    "song_metadata": "song_traits",
    "entity_counts": "popularity",
    "isrc": "release",
    "isrc_counts": "release",
    "same_flags": "follows_last_play",
    "id_codes": "identity",
    "song_parsing": "credits",
}
# (family, column-name prefix) -> code, checked before the family's code: the first match wins
COLUMN_REASONS: tuple[tuple[str, str, str], ...] = (
    ("user_attr_prob", "msno_first_genre_id", "genre_affinity"),
    ("user_attr_prob", "msno_language", "language_affinity"),
    ("user_attr_prob", "msno_yy", "era_affinity"),
    ("user_attr_prob", "msno_xxx", "label_affinity"),
    ("user_attr_prob", "msno_source", "source_habit"),
    ("till_now", "msno_", "your_activity"),
    ("before_windows", "msno_", "your_activity"),
    ("after_windows", "msno_", "your_activity"),
    ("time_stats", "msno_", "listening_time"),
    ("same_flags", "after_", "before_next_play"),
    ("member_add", "msno_language", "language_affinity"),
    ("member_add", "msno_yy", "era_affinity"),
    ("song_metadata", "artist_name", "song_artist"),
    ("song_metadata", "composer", "song_artist"),
    ("song_metadata", "lyricist", "song_artist"),
    ("song_metadata", "first_genre_id", "song_genre"),
    ("song_metadata", "second_genre_id", "song_genre"),
    ("song_metadata", "third_genre_id", "song_genre"),
    ("song_metadata", "language", "song_language"),
)


def reason_code(name: str, family: str) -> str:
    """The reason code of column ``name`` of ``family`` (KeyError for an unknown family)."""
    for fam, prefix, code in COLUMN_REASONS:
        if fam == family and name.startswith(prefix):
            return code
    return FAMILY_REASONS[family]


def _pattern(name: str) -> str:
    """``name`` with its numbers (window sizes, SVD components, codes) as ``#``: the catalogue's
    columns of any :class:`~relisten_spark.features.spec.Shape` map alike."""
    return re.sub(r"\d+", "#", name)


@cache
def _catalogue_reasons() -> dict[str, Reason]:
    out = {}
    for spec in catalogue():
        code = reason_code(spec.name, spec.family)
        out[_pattern(spec.name)] = Reason(code, REASONS[code])
    return out


def reason_of(name: str) -> Reason:
    """The reason of a feature column; a column outside the catalogue is a reason of its own,
    code and text its name."""
    return _catalogue_reasons().get(_pattern(name)) or Reason(name, name)


def feature_label(name: str) -> str:
    """The text a person reads for a feature column: its reason's text."""
    return reason_of(name).text
