"""The tiny hand-made bronze dataset of the feature tests (300 events).

Literal member / song / song_extra rows carry the edge cases; the events are drawn from a seeded
generator over them, with literal rows where an edge case needs one:

* members: bd = 0, -5, 75, 80 (-> null), bd 74 kept, a null bd, a null gender, an invalid date
  (20170230), and user ``u12`` who has events but no members row;
* songs: genre_ids missing / 1 / 2 / 4 tokens, artist names cut by the thesis's rules ("Brandy"
  -> "Br", "feat", "&", ","), a song with metadata but no artist, empty (null) composer and
  lyricist, language -1 and null, songs ``s25``..``s30`` without songs.csv metadata (``s25``,
  ``s26`` still have an ISRC), ISRC years on both sides of the 2000/1900 rule, a null ISRC, songs
  that never occur in the events (filtered out);
* events: 220 train + 80 test rows; user ``u11`` and song ``s30`` occur only in test rows, some
  (msno, song_id) pairs occur in train and test (the TP filter), null and literal 'null' /
  'Unknown' source values; every user has a first and a last event.
"""

from __future__ import annotations

import random

import pandas as pd
from pyspark.sql import SparkSession

from relisten_spark import schemas
from relisten_spark.features.bronze import BronzeFrames

N_TRAIN, N_TEST = 220, 80

MEMBERS = [
    # msno, city, bd, gender, registered_via, registration_init_time, expiration_date
    ("u01", 1, 0, None, 7, 20110820, 20170920),
    ("u02", 13, 25, "female", 9, 20150628, 20170622),
    ("u03", 5, 80, "male", 4, 20160101, 20171001),
    ("u04", 1, None, "male", 3, 20121212, 20170101),
    ("u05", 22, 74, "female", 7, 20040326, 20180220),
    ("u06", 1, 75, None, 9, 20161231, 20170131),
    ("u07", 4, -5, "male", 4, 20130510, 20170515),
    ("u08", 13, 30, "female", 7, 20160815, 20170230),
    ("u09", 5, 41, None, 9, 20100101, 20171231),
    ("u10", 1, 19, "male", 3, 20170110, 20170210),
    ("u11", 15, 33, "female", 13, 20161120, 20170320),
    ("u99", 3, 28, "male", 7, 20150101, 20170101),  # never in the events
]

SONGS = [
    # song_id, song_length, genre_ids, artist_name, composer, lyricist, language
    ("s01", 247640, "465", "Brandy", "TEDDY|  FUTURE BOUNCE|  Bekuh BOOM", "TEDDY", 3),
    ("s02", 197328, "444|1259", "A and B", None, None, 31),
    ("s03", 231781, "465", "X feat. Y", "c/d;e", "f;g", 52),
    ("s04", 273554, "1|2|3|4", "C & D", "a\\b", None, -1),
    ("s05", 140329, None, "E, F", "Joe Hisaishi", "Hayao Miyazaki", 17),
    ("s06", 235520, "465|958", "BLACKPINK", "TEDDY", "TEDDY", 31),
    ("s07", 226220, "458", "Brandy", "Jonathan Lee", None, 3),
    ("s08", 276793, "465", None, "光良", "彭資閔", 3),
    ("s09", 228623, "465", "林俊傑 (JJ Lin)", "JJ Lin", "Wu Qing Feng", None),
    ("s10", 232629, "352|1995", "Kodaline", "Stephen Garrigan| Mark Prendergast", "Stephen Garrigan", 52),
    ("s11", 272544, "2157", "  Spaced  ", "陳偉強", "陳偉強", 10),
    ("s12", 254880, "465", "BLACKPINK", None, "TEDDY", 31),
    ("s13", 180871, "726", "Littlesong", "Michael William Balfe", None, -1),
    ("s14", 257602, "458", "A and B", "蔡旻佑", "陳信延", 3),
    ("s15", 282697, "359", "Coldplay", "Chris Martin| Guy Berryman", None, 52),
    ("s16", 221518, "359", "Maggie Rogers", "Maggie Rogers| Nicholas Das", None, 52),
    ("s17", 199157, "458", "Men and Children", "Skot/Dominique", "Vince", 3),
    ("s18", 169430, "465", "BIGBANG feat. TEDDY", "TAEYANG| TEDDY", "G-DRAGON| T.O.P", 31),
    ("s19", 374027, "726", "White Noise", None, None, -1),
    ("s20", 210000, "444", "C & D", "x", "y", 17),
    ("s21", 190000, "465|444|1259", "Brandy", "TEDDY", "TEDDY", 3),
    ("s22", 205000, None, "Kodaline", None, None, 52),
    ("s23", 300000, "1259", "Coldplay", "Chris Martin", None, 52),
    ("s24", 99000, "465", "BLACKPINK", "TEDDY", "TEDDY", 31),
    ("s90", 123456, "465", "Never Played", "n", "n", 3),  # not in the events
]

SONG_EXTRA = [
    # song_id, name, isrc
    ("s01", "one", "TWUM71200043"),
    ("s02", "two", "QMZSY1600015"),
    ("s03", "three", "USAB19900001"),
    ("s04", "four", "GBXX17000001"),
    ("s05", "five", None),
    ("s06", "six", "JPZZZ1800001"),
    ("s07", "seven", "TWUM70912345"),
    ("s08", "eight", "TWAB11100001"),
    ("s09", "nine", "USAB19900002"),
    ("s10", "ten", "GBXX15000009"),
    ("s11", "eleven", "TWUM71200044"),
    ("s12", "twelve", "JPZZ16000001"),
    ("s13", "thirteen", "USCD08800001"),
    ("s14", "fourteen", "TWAB11100002"),
    ("s15", "fifteen", "GBXX15000010"),
    ("s16", "sixteen", "USCD08800002"),
    ("s17", "seventeen", "TWUM71200045"),
    ("s18", "eighteen", "KRAA11700001"),
    ("s19", "nineteen", "QMZSY1600016"),
    ("s20", "twenty", "GBXX17000002"),
    ("s25", "meta-less with isrc", "TWUM71200046"),
    ("s26", "meta-less with isrc 2", "USAB19900003"),
    ("s90", "never played", "TWUM71200047"),
]

_TABS = ["my library", "discover", "search", "radio", "explore", None, "null", "listen with"]
_SCREENS = [
    "Local playlist more",
    "Online playlist more",
    "Explore",
    "Search",
    "Radio",
    None,
    "Unknown",
    "Album more",
]
_TYPES = ["local-library", "online-playlist", "song", "radio", "album", None, "local-playlist", "listen-with"]


def events_rows() -> list[tuple]:
    """``(idx, msno, song_id, source_system_tab, source_screen_name, source_type, target, split)``."""
    rng = random.Random(20240607)
    train_users = [f"u{i:02d}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12)]
    weights = [12, 6, 5, 4, 3, 3, 2, 2, 2, 1, 3]
    songs = [f"s{i:02d}" for i in range(1, 30)]
    song_weights = [max(1, 12 - i // 2) for i in range(len(songs))]
    rows = []
    for idx in range(N_TRAIN + N_TEST):
        test = idx >= N_TRAIN
        user = rng.choices(train_users, weights)[0]
        song = rng.choices(songs, song_weights)[0]
        if test and idx % 9 == 0:
            user = "u11"
        if test and idx % 13 == 0:
            song = "s30"
        sources = (rng.choice(_TABS), rng.choice(_SCREENS), rng.choice(_TYPES))
        if idx % 50 == 7:
            sources = (None, None, None)
        target = None if test else rng.randint(0, 1)
        rows.append((idx, user, song, *sources, target, "test" if test else "train"))
    # a few test rows repeat a train pair of the same user (removed from the TP basis)
    for idx, src in ((230, 3), (251, 10), (277, 42)):
        rows[idx] = (idx, rows[src][1], rows[src][2], *rows[idx][3:])
    return rows


def tiny_frames(spark: SparkSession, events: list[tuple] | None = None) -> BronzeFrames:
    """The tiny dataset as bronze DataFrames (``events`` overrides the event rows)."""
    return BronzeFrames(
        events=spark.createDataFrame(events if events is not None else events_rows(), schemas.EVENTS),
        members=spark.createDataFrame(MEMBERS, schemas.MEMBERS),
        songs=spark.createDataFrame(SONGS, schemas.SONGS),
        song_extra=spark.createDataFrame(SONG_EXTRA, schemas.SONG_EXTRA),
    )


def tiny_pandas(events: list[tuple] | None = None) -> dict[str, pd.DataFrame]:
    """The same data as pandas frames (object columns keep None)."""
    rows = events if events is not None else events_rows()
    return {
        "events": pd.DataFrame(rows, columns=schemas.EVENTS.fieldNames()).astype(object),
        "members": pd.DataFrame(MEMBERS, columns=schemas.MEMBERS.fieldNames()).astype(object),
        "songs": pd.DataFrame(SONGS, columns=schemas.SONGS.fieldNames()).astype(object),
        "song_extra": pd.DataFrame(SONG_EXTRA, columns=schemas.SONG_EXTRA.fieldNames()).astype(object),
    }
