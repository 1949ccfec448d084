"""Calibrated synthetic KKBOX data (``relisten generate``).

Writes into one directory the five CSV files of the KKBOX "music recommendation" competition in
their exact format, plus the true event probabilities:

====================  ========================================================================
file                  columns (header line, in this order)
====================  ========================================================================
train.csv             msno,song_id,source_system_tab,source_screen_name,source_type,target
test.csv              id,msno,song_id,source_system_tab,source_screen_name,source_type
members.csv           msno,city,bd,gender,registered_via,registration_init_time,expiration_date
songs.csv             song_id,song_length,genre_ids,artist_name,composer,lyricist,language
song_extra_info.csv   song_id,name,isrc
truth.csv             split,row,p_true
====================  ========================================================================

``truth.csv`` is never part of the KKBOX files: ``split`` is ``train`` or ``test``, ``row`` the
0-based data row within that file (for test rows this is the ``id``) and ``p_true`` the
probability, in (0, 1) with six decimals, with which the event's target was drawn. Its rows come
in event order, all train rows then all test rows, so data line ``i`` of truth.csv is the event
with global ``idx = i`` of bronze.events and the oracle AUC of any holdout is
``roc_auc_score(target, p_true)`` over its rows.

Format: UTF-8, LF line ends, no BOM; a field is quoted only when it holds a ``"`` (doubled
inside) or a TAB, as in the real files; no field holds a comma or a newline. Empty fields are
the missing marker, next to KKBOX's placeholders (``null`` tab, ``Unknown`` screen and
composer, ``-`` lyricist, ``-1`` language, bd 0, expiration 19700101).

Scale: ``users`` = rows of members.csv (each has at least one event), ``songs`` = distinct songs
of the event log, ``events`` = train rows + test rows; the test file holds the chronologically
last ``test_fraction`` of events. Row order is the clock. Within train, and within test,
(msno, song_id) pairs are unique; about 12.5% of the test rows repeat a train pair (KKBOX:
~320k). About 0.3% of the played songs are missing from songs.csv and 0.5% from
song_extra_info.csv; songs.csv also lists 2% never-played songs. A deterministic handful of
song ids equal member ids (KKBOX has 12 such collisions among 34,403 members). Same arguments,
same bytes.

Generative model (marginals from CALIBRATION.md, structure from the thesis's data analysis):

* Latent taste: ``K`` clusters with unit centres in R^16. Users mix clusters (Dirichlet 0.3);
  artists belong to a cluster, songs mostly to their artist's; genres and languages are drawn
  from cluster-specific distributions whose average is the calibrated marginal. Who listens to
  which song follows the clusters, so co-occurrence carries the taste signal (collaborative
  models) and genre, language and artist carry part of it (content models).
* Activity: every song gets a listener count from a heavy-tailed sequence (about 62% of songs
  have one listener, capped at 30% of the users), ranked by artist and song popularity; each
  listen picks a user with weight ``activity_u * (0.8 theta_uk + 0.2 / K)`` (lognormal
  activity: median ~140 distinct songs per user at full scale), duplicate pairs are redrawn.
* Time: users join and leave (registration in 2017 -> joins late, expiration before 2017 ->
  leaves early); a user's events come in sessions spread over their active span; new releases
  are heard only after release (by users still active then). Sorting by time gives the row
  order.
* Context: a user-specific preference over ``source_system_tab``; within a tab the
  (screen, type) combination follows KKBOX's joint table; most events keep their session's
  context.
* Target: ``Bernoulli(p_true)``, ``logit p_true = user propensity + user activity + song +
  popularity + artist + genre (726 highest) + song-length inverted U (3-5 min best) + age (dip at
  35-45) + user.song factor dot + user.artist factor dot + user.genre affinity + screen/type
  offsets + a slow downward trend + a per-tab offset``; the per-tab offsets are solved so the
  train-row repeat rate per tab follows KKBOX's ordering (my library ~0.69 ... radio ~0.17) and
  the overall train rate is 0.5035. (CALIBRATION's 85% vs 24% come from the head of train.csv,
  whose overall rate is 76%; with KKBOX's tab shares and 50.35% overall they cannot both hold.)
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from relisten_spark.config import Config
from relisten_spark.errors import ConfigError

log = logging.getLogger(__name__)

TRAIN_COLUMNS = ("msno", "song_id", "source_system_tab", "source_screen_name", "source_type", "target")
TEST_COLUMNS = ("id", "msno", "song_id", "source_system_tab", "source_screen_name", "source_type")
MEMBERS_COLUMNS = (
    "msno",
    "city",
    "bd",
    "gender",
    "registered_via",
    "registration_init_time",
    "expiration_date",
)
SONGS_COLUMNS = ("song_id", "song_length", "genre_ids", "artist_name", "composer", "lyricist", "language")
SONG_EXTRA_COLUMNS = ("song_id", "name", "isrc")
TRUTH_COLUMNS = ("split", "row", "p_true")
FILES = {
    "train": ("train.csv", TRAIN_COLUMNS),
    "test": ("test.csv", TEST_COLUMNS),
    "members": ("members.csv", MEMBERS_COLUMNS),
    "songs": ("songs.csv", SONGS_COLUMNS),
    "song_extra": ("song_extra_info.csv", SONG_EXTRA_COLUMNS),
    "truth": ("truth.csv", TRUTH_COLUMNS),
}

TARGET_RATE = 0.5035  # public KKBOX train figure; the thesis: 3.68M of 7.31M repeat
REPEAT_PAIR_SHARE = 0.125  # share of test rows whose pair is in train (KKBOX: ~320k of 2.56M)
SINGLE_LISTENER_SHARE = 0.62  # thesis 3.3
EXTRA_SONG_SHARE = 0.02  # songs.csv rows never played
NO_SONG_META_SHARE = 0.003  # played songs missing from songs.csv (and song_extra_info.csv)
NO_EXTRA_META_SHARE = 0.002  # further played songs missing from song_extra_info.csv only
ID_COLLISIONS_PER_MEMBER = 12 / 34403  # song ids equal to a member id (CALIBRATION 5)
VARIOUS_ARTISTS_SHARE = 0.035  # KKBOX songs head: 4.64%
N_CLUSTERS = 20
DIM = 16
ARTIST_DIM = 8
CHUNK = 1_000_000

# ---------------------------------------------------------------- members (CALIBRATION 1)
CITY = {1: 19445, 13: 3395, 5: 2634, 4: 1732, 15: 1525, 22: 1467, 6: 913, 14: 708, 12: 491, 9: 309,
        8: 289, 11: 285, 18: 259, 10: 216, 21: 213, 3: 204, 17: 152, 7: 93, 16: 35, 20: 27,
        19: 11}  # fmt: skip
REGISTERED_VIA = {4: 11392, 7: 9433, 9: 8628, 3: 4879, 13: 70, 16: 1}
GENDER = {"": 19902, "male": 7405, "female": 7096}
BD_ZERO_GIVEN_GENDER = {"": 0.9788, "male": 0.0261, "female": 0.0364}
AGE_BINS = ((1, 10, 5), (10, 15, 54), (15, 18, 706), (18, 21, 1604), (21, 25, 2888), (25, 30, 3534),
            (30, 35, 2379), (35, 40, 1541), (40, 45, 788), (45, 50, 456), (50, 60, 388),
            (60, 75, 91))  # fmt: skip
INVALID_BD = {-43: 1, -38: 1, 76: 1, 78: 1, 82: 1, 83: 2, 85: 1, 87: 1, 89: 1, 90: 1, 93: 1, 95: 1, 96: 1,
              97: 1, 101: 1, 102: 2, 103: 1, 105: 5, 106: 1, 107: 1, 111: 3, 112: 3, 131: 1, 144: 1,
              931: 1, 1030: 1, 1051: 1}  # fmt: skip
INVALID_BD_SHARE_OF_NONZERO = 37 / 14471
REG_YEARS = {2004: 260, 2005: 396, 2006: 506, 2007: 706, 2008: 516, 2009: 497, 2010: 1215, 2011: 3070,
             2012: 1872, 2013: 3102, 2014: 2699, 2015: 4679, 2016: 10203, 2017: 4682}  # fmt: skip
EXP_YEARS = {2004: 3, 2005: 4, 2006: 5, 2007: 10, 2008: 10, 2009: 7, 2010: 8, 2011: 25, 2012: 39,
             2013: 68, 2014: 100, 2015: 509, 2016: 5547, 2017: 26239, 2018: 1813, 2019: 13,
             2020: 2}  # fmt: skip
EXP_2017_MONTH = (6.6, 5.6, 1.6, 0.7, 0.8, 5.1, 4.5, 3.6, 31.0, 14.3, 1.3, 1.1)

# ---------------------------------------------------------------- songs (CALIBRATION 3, 4)
SONG_LENGTH_QUANTILES = ((0.0, 4922), (0.001, 23311), (0.01, 59811), (0.05, 126641), (0.1, 161170),
                         (0.25, 199412), (0.5, 233639), (0.75, 273148), (0.9, 322415), (0.95, 375933),
                         (0.99, 629184), (0.999, 1523191), (1.0, 4748341))  # fmt: skip
TOP_GENRES = {465: 38.38, 1609: 5.83, 2022: 5.42, 921: 4.40, 958: 4.22, 2122: 3.68, 786: 3.54, 1259: 3.40,
              458: 2.98, 359: 2.37, 139: 2.17, 444: 2.13, 947: 1.81, 726: 1.71, 437: 1.63, 1152: 1.44,
              451: 1.01, 873: 0.86, 940: 0.84, 109: 0.78}  # fmt: skip
N_GENRES = 166  # distinct genre ids in KKBOX's train songs
GENRE_COUNT = {0: 1.79, 1: 91.73, 2: 5.03, 3: 1.00, 4: 0.25, 5: 0.10, 6: 0.05, 7: 0.04}
LANGUAGE = {52: 41.82, -1: 19.32, 3: 19.06, 17: 7.79, 31: 5.25, 24: 3.18, 10: 2.93, 59: 0.33, 45: 0.29,
            38: 0.04}  # fmt: skip
# language -> (composer empty share, lyricist empty share) (CALIBRATION 3.3)
EMPTY_CREDITS = {52: (0.4362, 0.8416), -1: (0.5117, 0.9164), 3: (0.3238, 0.4199), 17: (0.3386, 0.5645),
                 31: (0.5496, 0.7064), 24: (0.2268, 0.5764), 10: (0.4048, 0.4962), 59: (0.20, 0.9615),
                 45: (0.6154, 0.2479), 38: (0.42, 0.73)}  # fmt: skip
ISRC_COUNTRY = {"US": 9956, "TW": 5047, "GB": 4425, "JP": 3258, "HK": 1876, "DE": 1362, "FR": 1275,
                "KR": 1256, "TC": 1216, "QM": 779, "NL": 621, "IT": 619, "CA": 327, "AU": 309, "SE": 248,
                "CN": 223, "MY": 214, "ES": 196, "PL": 167, "TH": 154, "UK": 122, "BR": 93, "SG": 81,
                "DK": 79, "CH": 74}  # fmt: skip
ISRC_OTHER_COUNTRIES = (
    "AT BE FI NO IE NZ ZA MX AR IN ID PH VN RU TR GR PT CZ HU IL CL CO PE UA RO BG HR "
    "SI SK RS EE LV LT IS LU MT CY AE SA EG MA NG KE JM TT PR VE UY EC BO PA CR GT"
)
ISRC_OTHER_COUNT = 802
ISRC_EMPTY_SHARE = 0.1337
ISRC_DUPLICATE_SHARE = 757 / 34779
ISRC_MALFORMED_SHARE = 2 / 34779
ISRC_DECADES = {(1918, 1960): 0.82, (1960, 1970): 0.69, (1970, 1980): 0.95, (1980, 1990): 2.49,
                (1990, 2000): 8.83}  # fmt: skip
ISRC_YEARS = (2.4, 2.3, 2.0, 2.5, 2.7, 2.7, 2.9, 3.3, 3.5, 4.2, 5.0, 5.1, 7.4, 7.0, 9.1, 11.6, 11.9, 0.7)

# ---------------------------------------------------------------- context (CALIBRATION 2)
# source_system_tab -> (share of rows, train repeat rate before the global shift). Shares sit
# between the positive-biased train head and the test head of CALIBRATION 2.1; rates keep the
# sample's ordering while the overall rate is KKBOX's 50.35%.
TABS = {
    "my library": (0.500, 0.70),
    "discover": (0.295, 0.37),
    "search": (0.085, 0.35),
    "radio": (0.065, 0.18),
    "listen with": (0.029, 0.27),
    "explore": (0.022, 0.38),
    "": (0.0034, 0.55),
    "null": (0.0009, 0.22),
    "notification": (0.0008, 0.40),
    "settings": (0.0003, 0.55),
}
# tab -> [(screen, type, weight, logit offset)] after CALIBRATION 2.4/2.5
COMBOS: dict[str, list[tuple[str, str, float, float]]] = {
    "my library": [
        ("Local playlist more", "local-library", 0.600, 0.05),
        ("Local playlist more", "local-playlist", 0.300, 0.10),
        ("My library", "local-library", 0.015, 0.60),
        ("My library", "local-playlist", 0.010, 0.60),
        ("Album more", "album", 0.012, -0.60),
        ("", "local-library", 0.009, -0.10),
        ("Local playlist more", "online-playlist", 0.008, -0.70),
        ("Artist more", "top-hits-for-artist", 0.006, -0.60),
        ("Unknown", "local-library", 0.004, -0.40),
        ("Local playlist more", "song", 0.002, -0.50),
        ("My library_Search", "local-library", 0.001, 0.20),
        ("Local playlist more", "artist", 0.001, -0.80),
        ("Local playlist more", "listen-with", 0.0005, -0.80),
    ],
    "discover": [
        ("Online playlist more", "online-playlist", 0.420, 0.00),
        ("Online playlist more", "song-based-playlist", 0.070, 0.10),
        ("Discover Feature", "online-playlist", 0.126, -0.30),
        ("Discover Feature", "song", 0.007, -0.40),
        ("Discover Chart", "online-playlist", 0.114, 0.55),
        ("", "online-playlist", 0.060, 0.00),
        ("", "song-based-playlist", 0.047, 0.10),
        ("Discover Genre", "online-playlist", 0.036, 0.30),
        ("Album more", "album", 0.050, -0.15),
        ("Artist more", "top-hits-for-artist", 0.052, -0.20),
        ("Local playlist more", "local-library", 0.020, 0.80),
        ("Local playlist more", "local-playlist", 0.004, 0.80),
        ("Discover New", "online-playlist", 0.005, 0.40),
        ("Unknown", "online-playlist", 0.006, -0.40),
        ("Online playlist more", "topic-article-playlist", 0.0005, -0.50),
    ],
    "search": [
        ("Artist more", "top-hits-for-artist", 0.410, 0.00),
        ("Search", "song", 0.200, 0.35),
        ("Album more", "album", 0.170, 0.00),
        ("Online playlist more", "online-playlist", 0.150, -0.10),
        ("Search", "local-library", 0.030, 0.50),
        ("Search Trends", "song", 0.022, -0.70),
        ("Search Home", "song", 0.012, -0.90),
        ("Unknown", "song", 0.006, -0.40),
    ],
    "radio": [
        ("Radio", "radio", 0.975, 0.00),
        ("Album more", "album", 0.015, 0.30),
        ("Others profile more", "listen-with", 0.006, 0.20),
        ("Local playlist more", "radio", 0.004, 0.30),
    ],
    "listen with": [
        ("Others profile more", "listen-with", 0.920, 0.00),
        ("Online playlist more", "online-playlist", 0.070, 0.30),
        ("Unknown", "listen-with", 0.010, -0.30),
    ],
    "explore": [
        ("Explore", "online-playlist", 0.610, 0.00),
        ("Online playlist more", "online-playlist", 0.300, 0.10),
        ("Album more", "album", 0.056, -0.10),
        ("", "online-playlist", 0.025, 0.00),
        ("Artist more", "top-hits-for-artist", 0.009, -0.10),
    ],
    "": [("", "", 1.0, 0.0)],
    "null": [
        ("Discover Feature", "online-playlist", 0.47, 0.0),
        ("", "local-playlist", 0.41, 0.3),
        ("Local playlist more", "local-library", 0.12, 0.3),
    ],
    "notification": [("Local playlist more", "local-library", 0.5, 0.3), ("Album more", "album", 0.5, -0.3)],
    "settings": [("Local playlist more", "local-library", 1.0, 0.0)],
}

# ---------------------------------------------------------------- text material


def _words(text: str) -> np.ndarray:
    """Whitespace-separated words as an object array (the text material below)."""
    return np.array(text.split(), dtype=object)


LATIN_FIRST = _words(
    "James John Robert Michael David Chris Daniel Paul Mark Steven Kevin Brian Ryan Eric "
    "Jason Justin Adam Sam Max Tom Anna Maria Laura Sarah Emma Emily Julia Lisa Kelly Amy "
    "Nina Sofia Grace Chloe Mia Zoe Alex Jordan Taylor Jamie Luca Marco Pierre Hans Lars Sven "
    "Diego Carlos Kenji Yuki Hiro Min Jae Oliver Henry Jack Leo Noah Ethan Lucas Ava Ella "
    "Lily Ruby Ivy Nora Felix Oscar Hugo Elena Clara Frank Peter Simon Victor Andre Rafael "
    "Tony Dean Ray Rich Dan Ben Nick Joe Matt Evan Kyle Sean Shawn"
)
LATIN_LAST = _words(
    "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore "
    "Martin Jackson White Harris Clark Lewis Walker Hall Allen Young King Wright Scott Green "
    "Baker Adams Nelson Hill Campbell Mitchell Roberts Carter Phillips Evans Turner Parker "
    "Collins Edwards Stewart Morris Murphy Cook Rogers Morgan Cooper Peterson Reed Bailey "
    "Bell Howard Ward Cox Richardson Wood Watson Brooks Bennett Gray Hughes Price Sanders "
    "Myers Long Ross Foster Lam Chan Wong Lee Lin Chen Tsai Park Kim Choi Tanaka Suzuki Sato "
    "Keller Ward Parry Tipton Bogart Joyce Ingersoll Worth Freeman Kotecha Frampton Wilkins "
    "Larsson Berg Dubois Rossi Silva Novak Kowalski Jansen Muller Schmidt Fischer"
)
NICKNAMES = _words("Kidd Nottz Akon Ace Doc Blaze Junior Slim Red Boogie")
BAND_ADJ = _words(
    "Midnight Silver Golden Electric Broken Wild Neon Lonely Crimson Velvet Frozen Secret "
    "Blue Black Young Paper Crystal Shadow Burning Little Northern Happy Dirty Sonic Cosmic "
    "Atomic Sweet"
)
BAND_NOUN = _words(
    "Hearts Echoes Dreams Kings Rivers Lights Stars Wolves Birds Riders Machines Ghosts "
    "Saints Tigers Roses Waves Lovers Strangers Souls Giants Monkeys Pilots Sparks Foxes "
    "Arrows Keys Boys Girls"
)
CAPS_SYLLABLES = _words("KA RO MI ZE LU NA TO BI GO EX MO NI SA VI DA BANG PINK TWI CE RED SHI NEE")
TITLE_WORDS = _words(
    "Love Night Dream Heart Forever Tonight Summer Rain Fire Light Dance Home Baby Girl Boy "
    "World Time Sky Star Moon Sun Blue Sweet Lonely Crazy Wild Young Beautiful Goodbye Hello "
    "Again Never Always Tears Smile Kiss Memory Story Road Ocean River City Lights Shadow "
    "Angel Heaven Paradise Fly Run Stay Remember Believe Miss You Me My Your The Of In On "
    "Without With Falling Broken Golden Silent Chorale Prelude Symphony Nocturne Waltz Song "
    "Theme Melody Blues Groove Party Freedom Hope"
)
CJK_SURNAMES = (
    "王李張劉陳楊黃趙吳周徐孫馬朱胡郭何高林羅鄭梁謝宋唐許韓馮鄧曹彭曾蕭田董袁潘蔡蔣余杜葉程魏蘇呂丁任"
    "沈姚盧姜崔鍾譚陸汪范金石廖賈夏韋方白鄒孟熊秦邱江尹薛段雷侯龍史陶黎賀顧毛郝龔邵萬錢嚴武戴莫孔向湯"
)
CJK_GIVEN = (
    "偉芳娜秀英敏靜麗強磊軍洋勇艷杰娟濤明超蘭霞平剛桂華玉萍紅娥玲芬燕彬俊傑"
    "信哲學友宇翔婷怡雅君琪欣穎佳慧雯嘉豪志宏家銘建文德忠孝仁義禮智安順福祥瑞"
)
CJK_TITLE = (
    "愛你我的心夢天空雨風花月星光夜晚時間永遠回憶思念幸福眼淚等待溫柔孤單快樂離"
    "開相信自由青春世界明天愛情故事朋友微笑寂寞城市海洋陽光雪戀人寶貝再見勇氣希望"
)
JP_SURNAMES = _words("佐藤 鈴木 高橋 田中 渡辺 伊藤 山本 中村 小林 加藤 吉田 山田 浜崎 宇多田")
HIRAGANA = "".join(chr(c) for c in range(0x3041, 0x3094))
KATAKANA = "".join(chr(c) for c in range(0x30A1, 0x30F7))
HANGUL = "".join(chr(c) for c in range(0xAC00, 0xD7A4, 97))
THAI = "".join(chr(c) for c in range(0x0E01, 0x0E2F))
# name scripts, drawn per language: latin person, band, caps, cjk, cjk with English alias, kana,
# hangul, thai
SCRIPTS = ("person", "band", "caps", "cjk", "cjk_alias", "kana", "hangul", "thai")
SCRIPT_BY_LANGUAGE = {
    52: (0.50, 0.30, 0.17, 0.03, 0.0, 0.0, 0.0, 0.0),
    3: (0.08, 0.02, 0.02, 0.40, 0.48, 0.0, 0.0, 0.0),
    10: (0.05, 0.03, 0.02, 0.70, 0.20, 0.0, 0.0, 0.0),
    24: (0.08, 0.02, 0.02, 0.40, 0.48, 0.0, 0.0, 0.0),
    17: (0.20, 0.10, 0.10, 0.15, 0.0, 0.45, 0.0, 0.0),
    31: (0.15, 0.25, 0.52, 0.0, 0.0, 0.0, 0.08, 0.0),
    -1: (0.35, 0.15, 0.08, 0.34, 0.05, 0.03, 0.0, 0.0),
    59: (0.30, 0.10, 0.0, 0.30, 0.0, 0.0, 0.0, 0.30),
    45: (0.40, 0.20, 0.0, 0.0, 0.0, 0.0, 0.0, 0.40),
    38: (0.60, 0.40, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
}
TITLE_SUFFIXES = np.array(
    ["(Live)", "(Remix)", "(Acoustic Version)", "(Radio Edit)", "(Instrumental)", "(Original Mix)",
     "(Explicit)", "(Album Version)", "(Demo)", "(Extended Mix)", "(電視劇主題曲)", "(電影插曲)"],
    dtype=object,
)  # fmt: skip
# separators between names of one credit and their shares among multi-name values (CALIBRATION 3.3)
CREDIT_SEPARATORS = {
    "|": 0.893,
    "/": 0.060,
    ";": 0.017,
    " & ": 0.011,
    " and ": 0.006,
    "、": 0.007,
    "+": 0.006,
}
ARTIST_SEPARATORS = {
    " & ": 0.40,
    "|": 0.27,
    " and ": 0.10,
    " feat. ": 0.07,
    " / ": 0.08,
    " + ": 0.07,
    "、": 0.01,
}


@dataclass
class GenerationSummary:
    """What :func:`generate` wrote, how long it took and the statistics of the generated data.

    ``stats`` keys: ``target_rate`` (train), ``p_true_mean`` (train), ``oracle_auc`` and
    ``popularity_auc`` (last 20% of train rows; the popularity baseline scores a row by its
    song's listener count in the first 80%), ``single_listener_song_share``,
    ``median_songs_per_user``, ``events_per_user`` (quantiles), ``tab_share`` and ``tab_rate``
    (train rows per source_system_tab), ``type_rate`` (train, per source_type),
    ``length_rate`` and ``age_rate`` (train rate per song-length and age band),
    ``popularity_repeat_spearman`` (songs with >= 5 train rows), ``bd_zero_share``,
    ``gender_empty_share``, ``song_length_quantiles``, ``genre_count_share``,
    ``isrc_empty_share``, ``composer_empty_share``, ``lyricist_empty_share``,
    ``test_rows_with_train_pair``, ``train_users``, ``test_users``, ``test_songs_new``.
    """

    out_dir: Path
    users: int
    songs: int
    events: int
    train_rows: int
    test_rows: int
    seed: int
    seconds: float
    paths: dict[str, Path] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


# ====================================================================== helpers


def _rngs(seed: int) -> dict[str, np.random.Generator]:
    """Independent streams per component, so each part is reproducible on its own."""
    names = ("ids", "members", "latent", "catalog", "text", "isrc", "graph", "time", "context", "target")
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children, strict=True)}


def _b64_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` KKBOX-style ids: standard base64 of 32 random bytes (44 chars, one ``=``)."""
    raw = np.zeros((n, 33), dtype=np.uint8)
    raw[:, :32] = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    encoded = np.frombuffer(base64.b64encode(raw.tobytes()), dtype=np.uint8).reshape(n, 44).copy()
    encoded[:, 43] = ord("=")  # the 33rd (zero) byte only fills the last 6 bits: standard padding
    return encoded.view("S44").ravel().astype("U44").astype(object)


def _choice(rng: np.random.Generator, table: dict[Any, float], n: int) -> np.ndarray:
    """``n`` draws of the keys of ``table`` with probabilities proportional to its values."""
    keys = np.array(list(table.keys()), dtype=object)
    weights = np.array(list(table.values()), dtype=np.float64)
    return keys[rng.choice(len(keys), size=n, p=weights / weights.sum())]


def _draw_rows(rng: np.random.Generator, group: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per element: row ``probs[group[i]]`` (rows sum to 1)."""
    cum = np.cumsum(probs, axis=1)
    cum[:, -1] = 1.0
    out = np.empty(len(group), dtype=np.int64)
    u = rng.random(len(group))
    for g in np.flatnonzero(np.bincount(group)):
        sel = np.flatnonzero(group == g)
        out[sel] = np.searchsorted(cum[g], u[sel], side="right")
    return np.minimum(out, probs.shape[1] - 1)


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x, dtype=np.float64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _degree_sequence(
    rng: np.random.Generator, n: int, total: int, single_share: float, sigma: float, cap: int
) -> np.ndarray:
    """``n`` counts >= 1 summing to ``total``: a share of ones, the rest 2 + a lognormal tail <= cap."""
    mean = total / n
    if mean >= single_share + (1 - single_share) * 2.5:
        p1 = single_share
    else:
        p1 = float(np.clip((2.5 - mean) / 1.5, 0.0, 1.0))
    n1 = min(n, round(p1 * n))
    n2 = n - n1
    counts = np.ones(n, dtype=np.int64)
    rest = total - n1 - 2 * n2
    if n2 > 0 and rest > 0 and cap > 2:
        raw = rng.lognormal(0.0, sigma, n2)
        lo, hi = 0.0, float(cap)
        for _ in range(60):  # scale the tail so the sum lands on the target
            mid = (lo + hi) / 2
            if np.minimum(np.floor(raw * mid), cap - 2).sum() > rest:
                hi = mid
            else:
                lo = mid
        tail = np.minimum(np.floor(raw * lo), cap - 2).astype(np.int64)
        short = rest - int(tail.sum())
        while short > 0:
            room = np.flatnonzero(tail < cap - 2)
            if len(room) == 0:
                break
            pick = rng.choice(room, size=min(short, len(room)), replace=False)
            tail[pick] += 1
            short -= len(pick)
        counts[n1:] = 2 + tail
    elif n2 > 0:
        counts[n1:] = 2
    counts = counts[rng.permutation(n)]
    excess = int(counts.sum()) - total
    while excess > 0:  # only when n2 songs of 2 already overshoot a tiny total
        big = np.flatnonzero(counts > 1)
        pick = rng.choice(big, size=min(excess, len(big)), replace=False)
        counts[pick] -= 1
        excess -= len(pick)
    if counts.sum() != total:
        raise ConfigError(
            f"data.synthetic.events is too large for data.synthetic.users: cannot spread {total} "
            f"(user, song) pairs over {n} songs with at most {cap} listeners each"
        )
    return counts


def _char_strings(rng: np.random.Generator, alphabet: str, n: int, lo: int, hi: int) -> np.ndarray:
    """``n`` random strings of ``lo..hi`` characters of ``alphabet``."""
    chars = np.array(list(alphabet))
    lengths = rng.integers(lo, hi + 1, n)
    grid = chars[rng.integers(0, len(chars), size=(n, hi))]
    grid[np.arange(hi)[None, :] >= lengths[:, None]] = ""
    return np.ascontiguousarray(grid).view(f"<U{hi}").ravel().astype(object)


def _pick(rng: np.random.Generator, words: np.ndarray, n: int) -> np.ndarray:
    return words[rng.integers(0, len(words), n)]


def _coined(rng: np.random.Generator, n: int) -> np.ndarray:
    """Made-up capitalised names of two syllables and an optional coda ("Dalven", "Korima")."""
    onset = _words("B C D F G H J K L M N P R S T V W Z Br Ch Dr Gr Kr St Tr Sh")
    vowel = _words("a e i o u ai ei ou")
    coda = _words("n r s l m nd rt ck x")
    word = _pick(rng, onset, n) + _pick(rng, vowel, n) + _pick(rng, onset, n) + _pick(rng, vowel, n)
    word = np.where(rng.random(n) < 0.4, word + _pick(rng, coda, n), word)
    return pd.Series(word).str.capitalize().to_numpy(dtype=object)


def _latin_person(rng: np.random.Generator, n: int) -> np.ndarray:
    """ "First Last", "F. Last"; common names mixed with coined ones so that names rarely collide."""
    first = np.where(rng.random(n) < 0.3, _coined(rng, n), _pick(rng, LATIN_FIRST, n))
    initial = rng.random(n) < 0.12  # "C. Kelly"
    first = np.where(initial, pd.Series(first).str.slice(0, 1).to_numpy(dtype=object) + ".", first)
    last = np.where(rng.random(n) < 0.6, _coined(rng, n), _pick(rng, LATIN_LAST, n))
    return first + " " + last


def _names(rng: np.random.Generator, script: np.ndarray) -> np.ndarray:
    """A person or act name per element, in the script given by its index into SCRIPTS."""
    out = np.empty(len(script), dtype=object)
    for code, kind in enumerate(SCRIPTS):
        sel = np.flatnonzero(script == code)
        n = len(sel)
        if n == 0:
            continue
        if kind == "person":
            names = _latin_person(rng, n)
        elif kind == "band":
            the = np.where(rng.random(n) < 0.4, "The ", "")
            adjective = np.where(rng.random(n) < 0.6, _coined(rng, n), _pick(rng, BAND_ADJ, n))
            names = the + adjective + " " + _pick(rng, BAND_NOUN, n)
        elif kind == "caps":
            names = _char_strings(rng, "ABCDEFGHIJKLMNOPRSTUVWXYZ", n, 3, 8)
            syll = CAPS_SYLLABLES
            names = np.where(rng.random(n) < 0.2, _pick(rng, syll, n) + _pick(rng, syll, n), names)
        elif kind in ("cjk", "cjk_alias"):
            given = _char_strings(rng, CJK_GIVEN, n, 2, 2)
            given = np.where(
                rng.random(n) < 0.2, pd.Series(given).str.slice(0, 1).to_numpy(dtype=object), given
            )
            names = _char_strings(rng, CJK_SURNAMES, n, 1, 1) + given
            if kind == "cjk_alias":
                names = names + " (" + _latin_person(rng, n) + ")"
        elif kind == "kana":
            names = np.where(
                rng.random(n) < 0.5,
                _pick(rng, JP_SURNAMES, n) + _char_strings(rng, HIRAGANA, n, 2, 3),
                _char_strings(rng, KATAKANA, n, 3, 6),
            )
            names = np.where(rng.random(n) < 0.25, _latin_person(rng, n) + " (" + names + ")", names)
        elif kind == "hangul":
            names = _char_strings(rng, HANGUL, n, 2, 3)
        else:
            names = _char_strings(rng, THAI, n, 4, 9)
        out[sel] = names
    return out


def _script_of(rng: np.random.Generator, language: np.ndarray) -> np.ndarray:
    """Draw a SCRIPTS index per element from its language's script mix."""
    langs = list(SCRIPT_BY_LANGUAGE)
    lang_index = np.searchsorted(np.array(sorted(langs)), language)
    table = np.array([SCRIPT_BY_LANGUAGE[lang] for lang in sorted(langs)], dtype=np.float64)
    table /= table.sum(axis=1, keepdims=True)
    return _draw_rows(rng, lang_index, table)


# ====================================================================== members


def _members(rng: np.random.Generator, msno: np.ndarray) -> pd.DataFrame:
    """members.csv rows (CALIBRATION 1), in the file's column order."""
    n = len(msno)
    gender = _choice(rng, GENDER, n)
    bd_zero = rng.random(n) < pd.Series(gender).map(BD_ZERO_GIVEN_GENDER).to_numpy(dtype=np.float64)
    bins = np.array(AGE_BINS, dtype=np.int64)
    b = rng.choice(len(bins), size=n, p=bins[:, 2] / bins[:, 2].sum())
    bd = bins[b, 0] + np.floor(rng.random(n) * (bins[b, 1] - bins[b, 0])).astype(np.int64)
    invalid = ~bd_zero & (rng.random(n) < INVALID_BD_SHARE_OF_NONZERO)
    bd[invalid] = _choice(rng, INVALID_BD, int(invalid.sum())).astype(np.int64)
    bd[bd_zero] = 0

    reg = _dates(
        rng,
        _choice(rng, REG_YEARS, n).astype(np.int64),
        first={2004: "2004-03-26"},
        last={2017: "2017-02-28"},
    )
    exp_year = _choice(rng, EXP_YEARS, n).astype(np.int64)
    exp = _dates(rng, exp_year, last={2020: "2020-10-17"})
    in_2017 = np.flatnonzero(exp_year == 2017)
    month = rng.choice(12, size=len(in_2017), p=np.array(EXP_2017_MONTH) / sum(EXP_2017_MONTH))
    month_start = np.array(
        [np.datetime64(f"2017-{m + 1:02d}-01") for m in range(12)] + [np.datetime64("2018-01-01")]
    )
    span = (month_start[month + 1] - month_start[month]).astype(np.int64)
    exp[in_2017] = month_start[month] + np.floor(rng.random(len(in_2017)) * span).astype("timedelta64[D]")
    early = exp < reg  # a membership that ends before it starts: a short one instead
    gap = rng.choice(np.array([0, 0, 1, 2, 3, 7, 14, 30]), size=int(early.sum()))
    exp[early] = reg[early] + gap.astype("timedelta64[D]")
    exp_int = _yyyymmdd(exp)
    exp_int[rng.integers(0, n)] = 19700101  # KKBOX's one epoch placeholder
    reg_int = _yyyymmdd(reg)
    return pd.DataFrame(
        {
            "msno": msno,
            "city": _choice(rng, CITY, n).astype(np.int64),
            "bd": bd,
            "gender": gender,
            "registered_via": _choice(rng, REGISTERED_VIA, n).astype(np.int64),
            "registration_init_time": reg_int,
            "expiration_date": exp_int,
        }
    )


def _dates(
    rng: np.random.Generator,
    year: np.ndarray,
    first: dict[int, str] | None = None,
    last: dict[int, str] | None = None,
) -> np.ndarray:
    """A uniform day within each element's year (optionally clipped per year)."""
    first, last = first or {}, last or {}
    years = np.unique(year)
    lo = np.array([np.datetime64(first.get(int(y), f"{y}-01-01")) for y in years])
    hi = np.array([np.datetime64(last.get(int(y), f"{y}-12-31")) for y in years])
    k = np.searchsorted(years, year)
    days = (hi[k] - lo[k]).astype(np.int64) + 1
    return lo[k] + np.floor(rng.random(len(year)) * days).astype("timedelta64[D]")


def _yyyymmdd(days: np.ndarray) -> np.ndarray:
    ts = pd.DatetimeIndex(days)
    return (ts.year * 10000 + ts.month * 100 + ts.day).to_numpy(dtype=np.int64)


# ====================================================================== latent world


@dataclass
class _Latent:
    centres: np.ndarray  # K x DIM unit vectors
    cluster_share: np.ndarray  # K
    genre_ids: np.ndarray  # N_GENRES genre id values
    genre_probs: np.ndarray  # K x N_GENRES
    genre_effect: np.ndarray  # N_GENRES
    genre_taste: np.ndarray  # K x N_GENRES, cluster-level genre affinity
    languages: np.ndarray
    language_probs: np.ndarray  # K x languages
    artist_projection: np.ndarray  # DIM x ARTIST_DIM


def _rake(probs: np.ndarray, weights: np.ndarray, marginal: np.ndarray) -> np.ndarray:
    """Rescale the columns of row-stochastic ``probs`` so that ``weights @ probs == marginal``."""
    for _ in range(50):
        probs = probs * (marginal / np.maximum(weights @ probs, 1e-12))
        probs /= probs.sum(axis=1, keepdims=True)
    return probs


def _latent(rng: np.random.Generator) -> _Latent:
    centres = rng.normal(size=(N_CLUSTERS, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    top = np.array(list(TOP_GENRES), dtype=np.int64)
    others = np.setdiff1d(rng.choice(np.arange(1, 2300), size=N_GENRES * 2, replace=False), top)[
        : N_GENRES - len(top)
    ]
    genre_ids = np.concatenate([top, np.sort(others)])
    tail_share = 100.0 - sum(TOP_GENRES.values())
    tail = 1.0 / np.arange(1, len(others) + 1) ** 1.1
    base = np.concatenate([np.array(list(TOP_GENRES.values())), tail / tail.sum() * tail_share])
    base /= base.sum()
    cluster_share = rng.dirichlet(np.full(N_CLUSTERS, 4.0))
    genre_probs = _rake(rng.dirichlet(base * 40 + 1e-3, size=N_CLUSTERS), cluster_share, base)
    genre_effect = rng.normal(size=N_GENRES)
    genre_effect[0] = 0.0  # 465: the biggest genre, no extra loyalty (thesis 3.6)
    genre_effect[list(TOP_GENRES).index(726)] = 2.5  # 726: the highest repeat rate
    languages = np.array(list(LANGUAGE), dtype=np.int64)
    lang_base = np.array(list(LANGUAGE.values()))
    lang_base = lang_base / lang_base.sum()
    language_probs = _rake(rng.dirichlet(lang_base * 12 + 1e-3, size=N_CLUSTERS), cluster_share, lang_base)
    return _Latent(
        centres=centres,
        cluster_share=cluster_share,
        genre_ids=genre_ids,
        genre_probs=genre_probs,
        genre_effect=genre_effect,
        genre_taste=rng.normal(size=(N_CLUSTERS, N_GENRES)),
        languages=languages,
        language_probs=language_probs,
        artist_projection=rng.normal(size=(DIM, ARTIST_DIM)) / np.sqrt(DIM),
    )


# ====================================================================== catalog


@dataclass
class _Catalog:
    artist: np.ndarray  # per song
    cluster: np.ndarray
    language: np.ndarray  # language code per song
    genres: np.ndarray  # songs x 7 genre indices, -1 = none
    length_ms: np.ndarray
    release: np.ndarray  # event-clock time in [0, 1) before which nobody plays it
    song_effect: np.ndarray
    factor: np.ndarray  # songs x DIM
    artist_language: np.ndarray
    artist_effect: np.ndarray
    artist_factor: np.ndarray  # artists x ARTIST_DIM
    artist_pop: np.ndarray


def _catalog(rng: np.random.Generator, n_songs: int, lat: _Latent) -> _Catalog:
    """Numeric song and artist attributes for ``n_songs`` catalog songs."""
    n_artists = max(2, round(0.12 * n_songs))
    various = round(VARIOUS_ARTISTS_SHARE * n_songs)  # artist 0 becomes "Various Artists"
    cap = max(n_songs // 200, 4 * -(-(n_songs - various) // (n_artists - 1)))
    per_artist = _degree_sequence(rng, n_artists - 1, n_songs - various, 0.5, 1.6, cap)
    per_artist = np.concatenate([[various], per_artist])
    artist = rng.permutation(np.repeat(np.arange(n_artists), per_artist))
    various = 0
    a_cluster = rng.choice(N_CLUSTERS, size=n_artists, p=lat.cluster_share)
    a_language = _draw_rows(rng, a_cluster, lat.language_probs)
    a_genre = _draw_rows(rng, a_cluster, lat.genre_probs)
    a_pop = rng.normal(size=n_artists)
    a_factor = (
        lat.centres[a_cluster] @ lat.artist_projection * 2.0 + rng.normal(size=(n_artists, ARTIST_DIM)) * 0.35
    )

    cluster = np.where(
        rng.random(n_songs) < 0.85, a_cluster[artist], rng.choice(N_CLUSTERS, n_songs, p=lat.cluster_share)
    )
    own_language = _draw_rows(rng, cluster, lat.language_probs)
    keep = (rng.random(n_songs) < 0.9) & (artist != various)
    language = lat.languages[np.where(keep, a_language[artist], own_language)]

    n_genres = _choice(rng, GENRE_COUNT, n_songs).astype(np.int64)
    genres = np.full((n_songs, 7), -1, dtype=np.int64)
    first = np.where(rng.random(n_songs) < 0.7, a_genre[artist], _draw_rows(rng, cluster, lat.genre_probs))
    genres[:, 0] = np.where(n_genres > 0, first, -1)
    for j in range(1, 7):
        sel = np.flatnonzero(n_genres > j)
        pick = _draw_rows(rng, cluster[sel], lat.genre_probs)
        for _ in range(8):  # no genre twice in one song
            clash = (genres[sel, :j] == pick[:, None]).any(axis=1)
            if not clash.any():
                break
            pick[clash] = rng.integers(0, N_GENRES, int(clash.sum()))
        genres[sel, j] = pick

    q = np.array(SONG_LENGTH_QUANTILES, dtype=np.float64)
    length_ms = np.exp(np.interp(rng.random(n_songs), q[:, 0], np.log(q[:, 1]))).round().astype(np.int64)
    new = rng.random(n_songs) < 0.12
    release = np.where(new, rng.uniform(0.0, 0.95, n_songs), 0.0)
    factor = lat.centres[cluster] + rng.normal(size=(n_songs, DIM)) * (0.45 / np.sqrt(DIM))
    return _Catalog(
        artist=artist,
        cluster=cluster,
        language=language,
        genres=genres,
        length_ms=length_ms,
        release=release,
        song_effect=rng.normal(size=n_songs),
        factor=factor,
        artist_language=lat.languages[a_language],
        artist_effect=rng.normal(size=n_artists),
        artist_factor=a_factor,
        artist_pop=a_pop,
    )


# ====================================================================== text columns


def _artist_names(rng: np.random.Generator, cat: _Catalog) -> np.ndarray:
    n = len(cat.artist_pop)
    names = _names(rng, _script_of(rng, cat.artist_language))
    combined = np.flatnonzero(rng.random(n) < 0.055)  # "A & B", "A feat. B", "A| B", ...
    seps = _choice(rng, ARTIST_SEPARATORS, len(combined))
    pipe_space = np.array(["|", "| ", "|  "], dtype=object)[
        rng.choice(3, len(combined), p=[0.1327, 0.8664, 0.0009])
    ]
    seps = np.where(seps == "|", pipe_space, seps)
    partner = names[rng.integers(0, n, len(combined))]
    names[combined] = names[combined] + seps + partner
    quoted = rng.choice(n, size=max(0, round(n * 1e-4)), replace=False)
    names[quoted] = (
        _pick(rng, LATIN_FIRST, len(quoted))
        + ' "'
        + _pick(rng, NICKNAMES, len(quoted))
        + '" '
        + _pick(rng, LATIN_LAST, len(quoted))
    )
    names = _sprinkle(rng, names, nbsp=0.00035)
    names[0] = "Various Artists"
    return pd.Series(names).str.slice(0, 254).to_numpy(dtype=object)


def _sprinkle(
    rng: np.random.Generator, values: np.ndarray, nbsp: float = 0.0, tab: float = 0.0, pad: float = 0.0
) -> np.ndarray:
    """KKBOX's whitespace quirks: a U+00A0 for a space, a TAB inside or after, a trailing space."""
    values = values.copy()
    n = len(values)
    s = pd.Series(values, dtype=object)
    if nbsp:
        sel = np.flatnonzero((rng.random(n) < nbsp * 2) & s.str.contains(" ", regex=False).to_numpy())
        values[sel] = s.iloc[sel].str.replace(" ", "\u00a0", n=1, regex=False).to_numpy()
    if tab:
        sel = np.flatnonzero(rng.random(n) < tab)
        values[sel] = np.where(
            rng.random(len(sel)) < 0.5,
            values[sel] + "\t",
            pd.Series(values[sel]).str.slice(0, 1) + "\t" + pd.Series(values[sel]).str.slice(1),
        )
    if pad:
        sel = np.flatnonzero(rng.random(n) < pad)
        values[sel] = np.where(rng.random(len(sel)) < 0.7, values[sel] + " ", " " + values[sel])
    return values


def _credits(
    rng: np.random.Generator, cat: _Catalog, artist_names: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """composer and lyricist columns (CALIBRATION 3.3)."""
    n = len(cat.artist)
    pool_size = max(50, round(0.3 * n))
    pool_language = rng.choice(
        np.array(list(LANGUAGE)), size=pool_size, p=np.array(list(LANGUAGE.values())) / sum(LANGUAGE.values())
    )
    pool_script = _script_of(rng, pool_language)
    pool_script[np.isin(pool_script, [1, 2])] = 0  # credits name people, not bands
    pool = _names(rng, pool_script)
    quoted = rng.choice(pool_size, size=max(1, round(pool_size * 0.005)), replace=False)
    pool[quoted] = (
        _pick(rng, LATIN_FIRST, len(quoted))
        + ' "'
        + _pick(rng, NICKNAMES, len(quoted))
        + '" '
        + _pick(rng, LATIN_LAST, len(quoted))
    )
    order = np.argsort(pool_language, kind="stable")
    block_lang, block_start, block_size = np.unique(
        pool_language[order], return_index=True, return_counts=True
    )

    def from_block(language: np.ndarray) -> np.ndarray:
        """Pool rows for elements of ``language``: same-language names, skewed to the first ones."""
        k = np.searchsorted(block_lang, language)
        k = np.clip(k, 0, len(block_lang) - 1)
        ok = block_lang[k] == language
        within = np.floor(rng.random(len(language)) ** 1.5 * block_size[k]).astype(np.int64)
        anywhere = rng.integers(0, pool_size, len(language))
        return np.where(ok, order[block_start[k] + within], anywhere)

    house = from_block(cat.artist_language)  # each artist's usual composer
    lang = cat.language
    first = np.where(rng.random(n) < 0.5, house[cat.artist], from_block(lang))
    n_comp = np.where(rng.random(n) < 0.644, 1, 2 + rng.geometric(0.45, n) - 1).clip(1, 23)
    n_comp[rng.random(n) < 2e-4] = 23  # long credit lists, cut at 254 characters like KKBOX's
    composer = _join_credit(
        rng, pool[first], pool, lambda sel: from_block(lang[sel]), n_comp, (0.1578, 0.8407, 0.0015)
    )
    own = rng.random(n) < 0.089
    composer[own] = artist_names[cat.artist[own]]

    lyr_first = np.where(rng.random(n) < 0.4, house[cat.artist], from_block(lang))
    n_lyr = np.where(rng.random(n) < 0.733, 1, 2 + rng.geometric(0.5, n) - 1).clip(1, 23)
    lyricist = _join_credit(
        rng, pool[lyr_first], pool, lambda sel: from_block(lang[sel]), n_lyr, (0.3018, 0.6952, 0.003)
    )
    same = rng.random(n) < 0.51
    lyricist[same] = composer[same]

    empty = np.array([EMPTY_CREDITS.get(int(x), (0.42, 0.73)) for x in np.unique(lang)])
    k = np.searchsorted(np.unique(lang), lang)
    comp_empty_p, lyr_empty_p = empty[k, 0], empty[k, 1]
    comp_empty = rng.random(n) < comp_empty_p
    lyr_empty_given = np.clip((lyr_empty_p - 0.99 * comp_empty_p) / np.maximum(1 - comp_empty_p, 1e-9), 0, 1)
    lyr_empty = np.where(comp_empty, rng.random(n) < 0.99, rng.random(n) < lyr_empty_given)

    composer = _sprinkle(rng, composer, nbsp=0.00033, tab=0.000175, pad=0.0024)
    lyricist = _sprinkle(rng, lyricist, nbsp=0.00005, tab=0.000175, pad=0.0019)
    composer[rng.random(n) < 0.0002] = "Unknown"
    lyricist[rng.random(n) < 0.000125] = "-"
    composer[comp_empty] = ""
    lyricist[lyr_empty] = ""
    return (
        pd.Series(composer).str.slice(0, 254).to_numpy(dtype=object),
        pd.Series(lyricist).str.slice(0, 254).to_numpy(dtype=object),
    )


def _join_credit(
    rng: np.random.Generator, first: np.ndarray, pool: np.ndarray, more: Callable[[np.ndarray], np.ndarray],
    count: np.ndarray, pipe_spaces: tuple[float, float, float],
) -> np.ndarray:  # fmt: skip
    """``first`` followed by ``count - 1`` more names (pool rows ``more(selected elements)``).

    One separator per value; after ``|`` 0, 1 or 2 spaces with the given shares.
    """
    n = len(first)
    sep = _choice(rng, CREDIT_SEPARATORS, n)
    spaces = rng.choice(3, size=n, p=np.array(pipe_spaces) / sum(pipe_spaces))
    sep = np.where(sep == "|", np.array(["|", "| ", "|  "], dtype=object)[spaces], sep)
    sep = np.where(sep == "/", np.where(rng.random(n) < 0.5, " / ", "/"), sep)
    sep = np.where(sep == ";", "; ", sep)
    out = first.copy()
    for j in range(1, int(count.max()) if n else 1):
        sel = np.flatnonzero(count > j)
        out[sel] = out[sel] + sep[sel] + pool[more(sel)]
    return out


def _titles(rng: np.random.Generator, language: np.ndarray) -> np.ndarray:
    """song_extra_info.name: titles in the script of the song's language."""
    n = len(language)
    script = _script_of(rng, language)
    latin = np.isin(script, [0, 1, 2])
    words = rng.integers(1, 5, n)
    title = _pick(rng, TITLE_WORDS, n)
    for j in range(1, 4):
        sel = np.flatnonzero(latin & (words > j))
        title[sel] = title[sel] + " " + _pick(rng, TITLE_WORDS, len(sel))
    for code, alphabet, lo, hi in (
        (3, CJK_TITLE, 2, 6),
        (4, CJK_TITLE, 2, 6),
        (5, HIRAGANA + KATAKANA, 3, 8),
        (6, HANGUL, 2, 6),
        (7, THAI, 4, 10),
    ):
        sel = np.flatnonzero(script == code)
        title[sel] = _char_strings(rng, alphabet, len(sel), lo, hi)
    comma = np.flatnonzero(rng.random(n) < 0.01)  # a comma replaced upstream: "Aloha| E Komo Mai"
    title[comma] = title[comma] + "| " + _pick(rng, TITLE_WORDS, len(comma))
    suffix = np.flatnonzero(rng.random(n) < 0.15)
    title[suffix] = title[suffix] + " " + _pick(rng, TITLE_SUFFIXES, len(suffix))
    quoted = np.flatnonzero(rng.random(n) < 0.0081)
    drama = np.where(rng.random(len(quoted)) < 0.5, '(From KBS Drama "', '(電影"')
    title[quoted] = title[quoted] + " " + drama + _pick(rng, TITLE_WORDS, len(quoted)) + '")'
    title = np.where(
        rng.random(n) < 0.2,
        pd.Series(title).str.replace(" (", "(", n=1, regex=False).to_numpy(dtype=object),
        title,
    )
    title[rng.random(n) < 2.5e-5] = "Unknown"
    return title


def _isrc(rng: np.random.Generator, cat: _Catalog) -> np.ndarray:
    """ISRC codes CC RRR YY NNNNN (CALIBRATION 4): prefixes follow artists, 13% empty, 2% shared."""
    n = len(cat.artist)
    n_artists = len(cat.artist_pop)
    codes = list(ISRC_COUNTRY) + ISRC_OTHER_COUNTRIES.split()
    others = 1.0 / np.arange(1, len(ISRC_OTHER_COUNTRIES.split()) + 1)
    weights = np.concatenate(
        [np.array(list(ISRC_COUNTRY.values()), dtype=np.float64), others / others.sum() * ISRC_OTHER_COUNT]
    )
    weights /= weights.sum()
    n_reg = max(30, round(0.03 * n))
    per_country = np.maximum(1, np.round(weights * n_reg)).astype(np.int64)
    alnum = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    registrants = _char_strings(rng, "".join(alnum), int(per_country.max()) * len(codes), 3, 3).reshape(
        len(codes), -1
    )

    def prefixes(m: int) -> np.ndarray:
        country = rng.choice(len(codes), size=m, p=weights)
        within = np.floor(rng.random(m) ** 2 * per_country[country]).astype(np.int64)
        return np.array(codes, dtype=object)[country] + registrants[country, within]

    prefix = np.where(rng.random(n) < 0.8, prefixes(n_artists)[cat.artist], prefixes(n))
    years = np.arange(1918, 2018)
    year_p = np.zeros(len(years))
    for (lo, hi), share in ISRC_DECADES.items():
        year_p[(years >= lo) & (years < hi)] = share / (hi - lo)
    year_p[years >= 2000] = ISRC_YEARS
    year = rng.choice(years, size=n, p=year_p / year_p.sum())
    year = np.where(cat.release > 0, np.where(cat.release > 0.9, 2017, 2016), year)
    yy = pd.Series(year % 100).map("{:02d}".format).to_numpy(dtype=object)
    number = pd.Series(rng.integers(0, 100000, n)).map("{:05d}".format).to_numpy(dtype=object)
    isrc = prefix + yy + number
    shared = np.flatnonzero(rng.random(n) < ISRC_DUPLICATE_SHARE)
    isrc[shared] = isrc[rng.integers(0, n, len(shared))]
    odd = np.flatnonzero(rng.random(n) < ISRC_MALFORMED_SHARE)  # e.g. TWB53966001H
    isrc[odd] = (
        "TWB" + pd.Series(rng.integers(10000000, 99999999, len(odd))).astype(str).to_numpy(dtype=object) + "H"
    )
    isrc[rng.random(n) < ISRC_EMPTY_SHARE] = ""
    return isrc


# ====================================================================== the event log


@dataclass
class _Users:
    activity: np.ndarray
    theta: np.ndarray  # users x K
    factor: np.ndarray  # users x DIM
    artist_taste: np.ndarray  # users x ARTIST_DIM
    genre_taste: np.ndarray  # users x N_GENRES (float32)
    propensity: np.ndarray
    tab_pref: np.ndarray  # users x tabs
    start: np.ndarray
    end: np.ndarray


def _users(rng: np.random.Generator, members: pd.DataFrame, lat: _Latent) -> _Users:
    n = len(members)
    theta = rng.dirichlet(np.full(N_CLUSTERS, 0.3), size=n)
    factor = theta @ lat.centres
    factor /= np.maximum(np.linalg.norm(factor, axis=1, keepdims=True), 1e-9)
    factor = factor + rng.normal(size=(n, DIM)) * (0.45 / np.sqrt(DIM))
    artist_taste = factor @ lat.artist_projection * 2.0 + rng.normal(size=(n, ARTIST_DIM)) * 0.35
    genre_taste = (0.6 * theta @ lat.genre_taste + 0.8 * rng.normal(size=(n, N_GENRES))).astype(np.float32)
    tab_base = np.array([share for share, _ in TABS.values()])
    tab_base /= tab_base.sum()
    tab_pref = 0.7 * rng.dirichlet(tab_base * 8 + 1e-4, size=n) + 0.3 * tab_base
    reg = members["registration_init_time"].to_numpy()
    exp = members["expiration_date"].to_numpy()
    start = np.where(rng.random(n) < 0.75, 0.0, rng.uniform(0.0, 0.95, n))
    late = reg >= 20170101
    start[late] = rng.uniform(0.55, 0.98, int(late.sum()))
    stays = rng.random(n) < 0.78
    end = np.where(stays, 1.0, start + (1.0 - start) * rng.uniform(0.1, 1.0, n))
    gone = exp < 20170101
    end[gone] = start[gone] + (np.maximum(0.85, start[gone] + 0.03) - start[gone]) * rng.uniform(
        0.05, 1.0, int(gone.sum())
    )
    end = np.clip(end, start + 0.02, 1.0)
    return _Users(
        activity=rng.lognormal(0.0, 1.3, n),
        theta=theta,
        factor=factor,
        artist_taste=artist_taste,
        genre_taste=genre_taste,
        propensity=rng.normal(size=n),
        tab_pref=tab_pref,
        start=start,
        end=end,
    )


def _pairs(
    rng: np.random.Generator, listeners: np.ndarray, song_cluster: np.ndarray, usr: _Users
) -> tuple[np.ndarray, np.ndarray]:
    """Unique (user, song) pairs: song ``s`` gets ``listeners[s]`` distinct users.

    Users are drawn with weight ``activity * (0.8 theta_k + 0.2 / K)`` for the song's cluster
    ``k``; every user gets at least one song; duplicate pairs are redrawn (uniformly after a
    few rounds, so saturated popular songs still fill up).
    """
    n_users = len(usr.activity)
    n_songs = len(listeners)
    song = np.repeat(np.arange(n_songs, dtype=np.int32), listeners)
    n = len(song)
    weights = usr.activity[:, None] * (0.8 * usr.theta + 0.2 / N_CLUSTERS)  # users x K
    cum = np.cumsum(weights, axis=0)
    cum /= cum[-1]
    cluster = song_cluster[song]

    def draw(idx: np.ndarray, uniform: bool) -> np.ndarray:
        if uniform:
            return rng.integers(0, n_users, len(idx)).astype(np.int32)
        out = np.empty(len(idx), dtype=np.int32)
        u = rng.random(len(idx))
        k = cluster[idx]
        for c in np.flatnonzero(np.bincount(k)):
            sel = np.flatnonzero(k == c)
            out[sel] = np.minimum(np.searchsorted(cum[:, c], u[sel], side="right"), n_users - 1)
        return out

    user = draw(np.arange(n), uniform=False)
    guaranteed = rng.choice(n, size=n_users, replace=False)
    user[guaranteed] = rng.permutation(n_users).astype(np.int32)
    fixed = np.zeros(n, dtype=bool)
    fixed[guaranteed] = True
    key = user.astype(np.int64) * n_songs + song
    order = np.argsort(key * 2 + ~fixed)  # equal pairs: the guaranteed stub first
    sorted_key = key[order]
    del key
    dup = sorted_key[1:] == sorted_key[:-1]
    open_ = order[1:][dup]
    accepted = [sorted_key[np.concatenate([[True], ~dup])]]  # sorted chunks of taken pairs
    del order, sorted_key, dup
    for round_ in range(40):
        if len(open_) == 0:
            break
        user[open_] = draw(open_, uniform=round_ >= 6)
        new_key = user[open_].astype(np.int64) * n_songs + song[open_]
        taken = np.zeros(len(open_), dtype=bool)
        for chunk in accepted:
            pos = np.minimum(np.searchsorted(chunk, new_key), len(chunk) - 1)
            taken |= chunk[pos] == new_key
        free_key = new_key[~taken]
        fresh, first = np.unique(free_key, return_index=True)
        first_free = np.zeros(len(free_key), dtype=bool)
        first_free[first] = True
        if len(fresh):
            accepted.append(fresh)
        open_ = np.concatenate([open_[taken], open_[~taken][~first_free]])
    if len(open_):
        raise ConfigError(
            "data.synthetic.events is too large for data.synthetic.users x data.synthetic.songs: "
            "could not draw unique (user, song) pairs"
        )
    return user, song


def _clock(
    rng: np.random.Generator, user: np.ndarray, song: np.ndarray, usr: _Users, release: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Event times in [0, 1] and session ids: sessions spread over each user's active span."""
    n_users = len(usr.activity)
    degree = np.bincount(user, minlength=n_users)
    session_len = rng.lognormal(np.log(10.0), 0.5, n_users)
    n_sessions = np.maximum(1, np.ceil(degree / session_len)).astype(np.int64)
    offset = np.concatenate([[0], np.cumsum(n_sessions)[:-1]])
    session_user = np.repeat(np.arange(n_users), n_sessions)
    centre = usr.start[session_user] + (usr.end[session_user] - usr.start[session_user]) * rng.random(
        len(session_user)
    )
    session = offset[user] + np.floor(rng.random(len(user)) * n_sessions[user]).astype(np.int64)
    t = centre[session] + rng.random(len(user)) * 2e-4
    r = release[song]
    end = usr.end[user]
    late = np.flatnonzero((t < r) & (end > r))  # a new release is heard after it comes out
    t[late] = r[late] + (end[late] - r[late]) * rng.random(len(late)) * 0.5
    return t, session


# ====================================================================== context and target


def _combo_tables() -> tuple[pd.DataFrame, np.ndarray]:
    """All (tab, screen, type) combinations with their logit offsets; per-tab draw probabilities."""
    rows = []
    for t, (tab, combos) in enumerate(COMBOS.items()):
        total = sum(w for _, _, w, _ in combos)
        for screen, type_, w, off in combos:
            rows.append((t, tab, screen, type_, w / total, off))
    table = pd.DataFrame(rows, columns=["tab_index", "tab", "screen", "type", "p", "offset"])
    probs = np.zeros((len(COMBOS), len(table)))
    probs[table["tab_index"].to_numpy(), np.arange(len(table))] = table["p"].to_numpy()
    return table, probs


def _contexts(
    rng: np.random.Generator, user: np.ndarray, session: np.ndarray, n_sessions: int, usr: _Users
) -> tuple[np.ndarray, pd.DataFrame]:
    """A combo index per event: the session's context (75%) or a fresh draw from the user's mix."""
    table, probs = _combo_tables()

    def draw(u: np.ndarray) -> np.ndarray:
        tab = np.empty(len(u), dtype=np.int64)
        for lo in range(0, len(u), CHUNK):
            uu = u[lo : lo + CHUNK]
            cum = np.cumsum(usr.tab_pref[uu], axis=1)
            tab[lo : lo + CHUNK] = (cum < rng.random(len(uu))[:, None] * cum[:, -1:]).sum(axis=1)
        return _draw_rows(rng, np.minimum(tab, len(COMBOS) - 1), probs)

    has_session = session >= 0
    session_user = np.zeros(n_sessions, dtype=np.int64)
    session_user[session[has_session]] = user[has_session]
    session_combo = draw(session_user)
    fresh = draw(user)
    keep = has_session & (rng.random(len(user)) < 0.75)
    return np.where(keep, session_combo[np.maximum(session, 0)], fresh).astype(np.int16), table


def _length_effect(length_ms: np.ndarray) -> np.ndarray:
    """Inverted U: best at 3-5 minutes, -0.75 logit below 2 and above 7 minutes (thesis 3.5)."""
    minutes = length_ms / 60000.0
    return -0.75 * (np.clip(3.0 - minutes, 0.0, 1.0) + np.clip((minutes - 5.0) / 2.0, 0.0, 1.0))


def _age_effect(bd: np.ndarray) -> np.ndarray:
    """Repeat share falls from 5-25 to 35-45 years and rises after (thesis 3.8)."""
    age = bd.astype(np.float64)
    valid = (age >= 5) & (age <= 74)
    curve = np.interp(age, [0, 25, 35, 45, 60, 75], [0.0, 0.0, -0.35, -0.35, -0.05, 0.0])
    return np.where(valid, curve, -0.1)


def _solve_offsets(eta: np.ndarray, group: np.ndarray, n_groups: int, target: np.ndarray) -> np.ndarray:
    """Per-group logit offsets so that the mean of sigmoid(eta + offset) per group hits ``target``."""
    offset = np.log(target / (1 - target))
    count = np.bincount(group, minlength=n_groups).astype(np.float64)
    for _ in range(30):
        p = _sigmoid(eta + offset[group])
        mean = np.bincount(group, weights=p, minlength=n_groups) / np.maximum(count, 1)
        slope = np.bincount(group, weights=p * (1 - p), minlength=n_groups) / np.maximum(count, 1)
        step = np.where(count > 0, (target - mean) / np.maximum(slope, 1e-6), 0.0)
        offset += np.clip(step, -2, 2)
        if np.abs(step).max() < 1e-7:
            break
    return offset


def _logits(
    user: np.ndarray, song: np.ndarray, position: np.ndarray, combo_offset: np.ndarray,
    usr: _Users, cat: _Catalog, lat: _Latent, listeners: np.ndarray, bd: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Every term of the true logit except the per-tab offset."""
    n = len(user)
    degree = np.bincount(user, minlength=len(usr.activity))
    art = cat.artist[song]
    genre = np.maximum(cat.genres[song, 0], 0)
    has_genre = cat.genres[song, 0] >= 0
    dot = np.empty(n)
    art_dot = np.empty(n)
    taste = np.empty(n)
    for lo in range(0, n, CHUNK):
        sl = slice(lo, lo + CHUNK)
        dot[sl] = np.einsum("ij,ij->i", usr.factor[user[sl]], cat.factor[song[sl]])
        art_dot[sl] = np.einsum("ij,ij->i", usr.artist_taste[user[sl]], cat.artist_factor[art[sl]])
        taste[sl] = np.where(has_genre[sl], usr.genre_taste[user[sl], genre[sl]], 0.0)
    eta = 1.05 * _zscore(usr.propensity[user])
    eta += 0.15 * _zscore(np.log(degree[user]))
    eta += 0.30 * _zscore(cat.song_effect[song])
    eta += 0.80 * _zscore(np.log(listeners[song]))
    eta += 0.30 * _zscore(cat.artist_effect[art])
    eta += 0.25 * _zscore(np.where(has_genre, lat.genre_effect[genre], 0.0))
    eta += 0.85 * _zscore(dot)
    eta += 0.40 * _zscore(art_dot)
    eta += 0.35 * _zscore(taste)
    eta += _length_effect(cat.length_ms[song])
    eta += _age_effect(bd[user])
    eta += combo_offset
    eta += 0.5 * (0.5 - position)  # a slow drift down the clock
    return eta


# ====================================================================== writing


def _write_pyarrow(path: Path, columns: tuple[str, ...], table: pa.Table) -> None:
    """Write ``table`` under a plain header line; values are never quoted (none need it)."""
    with pa.OSFile(str(path), "wb") as sink:
        sink.write((",".join(columns) + "\n").encode())
        opts = pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=CHUNK)
        pacsv.write_csv(table, sink, opts)


def _quote(values: np.ndarray) -> np.ndarray:
    """KKBOX quoting: a field with ``"`` or TAB is quoted, inner quotes doubled."""
    s = pd.Series(values, dtype=object)
    need = (s.str.contains('"', regex=False) | s.str.contains("\t", regex=False)).to_numpy()
    out = values.copy()
    out[need] = '"' + s[need].str.replace('"', '""', regex=False).to_numpy(dtype=object) + '"'
    return out


def _write_text(path: Path, columns: tuple[str, ...], fields: list[np.ndarray]) -> None:
    line = fields[0].astype(object)
    for f in fields[1:]:
        line = line + "," + f
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(",".join(columns) + "\n")
        for lo in range(0, len(line), CHUNK):
            fh.write("\n".join(line[lo : lo + CHUNK]) + "\n")


def _dict_column(index: np.ndarray, values: np.ndarray) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(
        pa.array(index.astype(np.int32)), pa.array(values.astype(str), pa.string())
    )


def _commit(tmp: Path, path: Path, rows: int) -> None:
    os.replace(tmp, path)
    log.info("wrote %s (%d rows)", path, rows)


# ====================================================================== entry points


def _check_scale(users: int, songs: int, events: int, test_fraction: float) -> tuple[int, int, int]:
    if users < 2:
        raise ConfigError(f"data.synthetic.users must be at least 2, got {users}")
    if songs < 2:
        raise ConfigError(f"data.synthetic.songs must be at least 2, got {songs}")
    if not 0 < test_fraction < 1:
        raise ConfigError(f"data.synthetic.test_fraction must be in (0, 1), got {test_fraction}")
    n_test = round(events * test_fraction)
    n_train = events - n_test
    n_repeat = round(REPEAT_PAIR_SHARE * n_test)
    n_unique = events - n_repeat
    if n_test < 1 or n_train < 2:
        raise ConfigError(f"data.synthetic.events ({events}) is too small for a train and a test part")
    if n_unique < max(users, songs) or n_repeat > n_train:
        raise ConfigError(
            f"data.synthetic.events ({events}) must be at least about data.synthetic.users ({users}) and "
            f"data.synthetic.songs ({songs}) so that every user and song has an event"
        )
    if n_unique > 0.15 * users * songs:
        raise ConfigError(
            f"data.synthetic.events ({events}) is too large for data.synthetic.users ({users}) x "
            f"data.synthetic.songs ({songs}): at most 15% of all (user, song) pairs can be drawn"
        )
    return n_train, n_test, n_repeat


def generate(
    out_dir: Path, users: int, songs: int, events: int, seed: int, test_fraction: float = 0.2574
) -> GenerationSummary:
    """Write the five KKBOX CSV files and ``truth.csv`` into ``out_dir`` (created if missing).

    ``users`` members, ``songs`` distinct played songs, ``events`` train + test rows, the last
    ``test_fraction`` of them in test.csv. Deterministic in ``seed``: same arguments, same bytes.
    Raises :class:`ConfigError` naming the ``data.synthetic`` key when the scale is impossible.
    """
    started = time.perf_counter()
    n_train, n_test, n_repeat = _check_scale(users, songs, events, test_fraction)
    n_unique = events - n_repeat
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = _rngs(seed)

    # ids: members, played songs, never-played songs; a few song ids equal member ids
    n_extra = round(EXTRA_SONG_SHARE * songs)
    msno = _b64_ids(rng["ids"], users)
    song_id = _b64_ids(rng["ids"], songs + n_extra)
    collide = rng["ids"].choice(
        songs, size=min(songs, round(users * ID_COLLISIONS_PER_MEMBER)), replace=False
    )
    song_id[collide] = msno[rng["ids"].choice(users, size=len(collide), replace=False)]

    members = _members(rng["members"], msno)
    lat = _latent(rng["latent"])
    cat = _catalog(rng["catalog"], songs + n_extra, lat)
    usr = _users(rng["latent"], members, lat)
    log.info("generate: members and catalog ready (%.1f s)", time.perf_counter() - started)

    # listeners per played song, ranked by artist and song popularity, then the pairs
    gr = rng["graph"]
    cap = max(1, min(int(0.3 * users), n_unique))
    counts = np.sort(_degree_sequence(gr, songs, n_unique, SINGLE_LISTENER_SHARE, 1.9, cap))[::-1]
    score = 0.8 * cat.artist_pop[cat.artist[:songs]] + gr.normal(size=songs)
    listeners = np.empty(songs, dtype=np.int64)
    listeners[np.argsort(-score, kind="stable")] = counts
    user, song = _pairs(gr, listeners, cat.cluster[:songs], usr)
    log.info("generate: %d unique pairs drawn (%.1f s)", len(user), time.perf_counter() - started)

    ev_user, ev_song, ev_session = _event_log(rng["time"], user, song, usr, cat.release, n_train, n_repeat)
    del user, song
    log.info("generate: clock ready (%.1f s)", time.perf_counter() - started)

    combo, combos = _contexts(rng["context"], ev_user, ev_session, int(ev_session.max()) + 1, usr)
    del ev_session
    tab_index = combos["tab_index"].to_numpy()[combo]
    position = np.arange(events) / events
    bd = members["bd"].to_numpy()
    eta = _logits(
        ev_user, ev_song, position, combos["offset"].to_numpy()[combo], usr, cat, lat, listeners, bd
    )
    p_true = _calibrate(eta, tab_index, n_train)
    del eta, position
    target = (rng["target"].random(events) < p_true).astype(np.int8)
    log.info("generate: targets drawn (%.1f s)", time.perf_counter() - started)

    paths, file_stats = _write_all(
        out_dir,
        rng,
        msno,
        song_id,
        songs,
        members,
        cat,
        lat,
        combo,
        combos,
        ev_user,
        ev_song,
        target,
        p_true,
        n_train,
    )
    stats = _statistics(ev_user, ev_song, combo, combos, target, p_true, n_train, members, cat)
    stats.update(file_stats)
    seconds = time.perf_counter() - started
    log.info("generate: done in %.1f s", seconds)
    return GenerationSummary(
        out_dir=out_dir,
        users=users,
        songs=songs,
        events=events,
        train_rows=n_train,
        test_rows=n_test,
        seed=seed,
        seconds=seconds,
        paths=paths,
        stats=stats,
    )


def _event_log(
    rng: np.random.Generator, user: np.ndarray, song: np.ndarray, usr: _Users, release: np.ndarray,
    n_train: int, n_repeat: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Order the unique pairs by time, cut train/test, and replay ``n_repeat`` train pairs in test.

    Returns user, song and session (-1 for replays) per event in file order: train rows, then
    test rows. Replayed pairs prefer users still active after the cut.
    """
    t, session = _clock(rng, user, song, usr, release)
    order = np.argsort(t, kind="stable")
    train_ev, test_ev = order[:n_train], order[n_train:]
    t_cut = t[train_ev[-1]]
    alive = usr.end[user[train_ev]] > t_cut
    pick = np.sort(np.argsort(-(rng.random(n_train) + alive), kind="stable")[:n_repeat])
    rep = train_ev[pick]
    rep_t = t_cut + 1e-9 + (np.maximum(usr.end[user[rep]], t_cut) - t_cut) * rng.random(n_repeat)
    test_t = np.concatenate([t[test_ev], rep_t])
    test_order = np.argsort(test_t, kind="stable")
    test_user = np.concatenate([user[test_ev], user[rep]])[test_order]
    test_song = np.concatenate([song[test_ev], song[rep]])[test_order]
    test_session = np.concatenate([session[test_ev], np.full(n_repeat, -1)])[test_order]
    return (
        np.concatenate([user[train_ev], test_user]),
        np.concatenate([song[train_ev], test_song]),
        np.concatenate([session[train_ev], test_session]),
    )


def _calibrate(eta: np.ndarray, tab_index: np.ndarray, n_train: int) -> np.ndarray:
    """p_true = sigmoid(eta + per-tab offset): tab rates follow TABS, shifted together so the
    train rate is TARGET_RATE."""
    train_tab = tab_index[:n_train]
    tab_rate = np.array([rate for _, rate in TABS.values()])
    tab_count = np.bincount(train_tab, minlength=len(TABS))
    logit_rate = np.log(tab_rate / (1 - tab_rate))
    lo, hi = -5.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (tab_count * _sigmoid(logit_rate + mid)).sum() / n_train > TARGET_RATE:
            hi = mid
        else:
            lo = mid
    offsets = _solve_offsets(eta[:n_train], train_tab, len(TABS), _sigmoid(logit_rate + lo))
    return np.clip(_sigmoid(eta + offsets[tab_index]), 1e-6, 1 - 1e-6)


def _genre_strings(genres: np.ndarray, genre_values: np.ndarray) -> np.ndarray:
    """``465``, ``465|1609``, or empty: genre id tokens joined by ``|``."""
    token = np.where(genres >= 0, genre_values[np.maximum(genres, 0)].astype(str), "").astype(object)
    out = token[:, 0].copy()
    for j in range(1, genres.shape[1]):
        sel = np.flatnonzero(genres[:, j] >= 0)
        out[sel] = out[sel] + "|" + token[sel, j]
    return out


def _write_all(
    out_dir: Path, rng: dict[str, np.random.Generator], msno: np.ndarray, song_id: np.ndarray, songs: int,
    members: pd.DataFrame, cat: _Catalog, lat: _Latent, combo: np.ndarray, combos: pd.DataFrame,
    ev_user: np.ndarray, ev_song: np.ndarray, target: np.ndarray, p_true: np.ndarray, n_train: int,
) -> tuple[dict[str, Path], dict[str, Any]]:  # fmt: skip
    """Write the six files (each under a temporary name, then renamed); return paths and file stats."""
    paths = {key: out_dir / name for key, (name, _) in FILES.items()}
    tmp = {key: path.with_name(path.name + ".tmp") for key, path in paths.items()}
    events = len(ev_user)
    msno_dict = pa.array(msno.astype(str), pa.string())
    song_dict = pa.array(song_id.astype(str), pa.string())

    def event_table(sl: slice) -> dict[str, pa.Array]:
        c = combo[sl]
        return {
            "msno": pa.DictionaryArray.from_arrays(pa.array(ev_user[sl].astype(np.int32)), msno_dict),
            "song_id": pa.DictionaryArray.from_arrays(pa.array(ev_song[sl].astype(np.int32)), song_dict),
            "source_system_tab": _dict_column(c, combos["tab"].to_numpy(dtype=object)),
            "source_screen_name": _dict_column(c, combos["screen"].to_numpy(dtype=object)),
            "source_type": _dict_column(c, combos["type"].to_numpy(dtype=object)),
        }

    cols = event_table(slice(0, n_train))
    cols["target"] = pa.array(target[:n_train])
    _write_pyarrow(tmp["train"], TRAIN_COLUMNS, pa.table(cols))
    _commit(tmp["train"], paths["train"], n_train)
    cols = {
        "id": pa.array(np.arange(events - n_train, dtype=np.int64)),
        **event_table(slice(n_train, events)),
    }
    _write_pyarrow(tmp["test"], TEST_COLUMNS, pa.table(cols))
    _commit(tmp["test"], paths["test"], events - n_train)
    del cols

    order = rng["members"].permutation(len(members))
    _write_pyarrow(
        tmp["members"], MEMBERS_COLUMNS, pa.Table.from_pandas(members.iloc[order], preserve_index=False)
    )
    _commit(tmp["members"], paths["members"], len(members))

    text_rng = rng["text"]
    artist_names = _artist_names(text_rng, cat)
    composer, lyricist = _credits(text_rng, cat, artist_names)
    n_catalog = len(cat.artist)
    meta = text_rng.random(n_catalog)
    in_songs = np.ones(n_catalog, dtype=bool)
    in_songs[:songs] = meta[:songs] >= NO_SONG_META_SHARE
    in_extra = in_songs.copy()
    in_extra[:songs] &= meta[:songs] >= NO_SONG_META_SHARE + NO_EXTRA_META_SHARE
    genre_ids = _genre_strings(cat.genres, lat.genre_ids)
    language = cat.language.astype(str).astype(object)
    listed = np.flatnonzero(in_songs)
    language[text_rng.choice(listed, size=max(1, round(len(listed) * 2e-6)), replace=False)] = ""
    length = cat.length_ms.astype(str).astype(object)
    rows = text_rng.permutation(np.flatnonzero(in_songs))
    _write_text(
        tmp["songs"],
        SONGS_COLUMNS,
        [song_id[rows], length[rows], genre_ids[rows], _quote(artist_names[cat.artist[rows]]),
         _quote(composer[rows]), _quote(lyricist[rows]), language[rows]],
    )  # fmt: skip
    _commit(tmp["songs"], paths["songs"], len(rows))
    n_genres = (cat.genres[rows] >= 0).sum(axis=1)
    file_stats: dict[str, Any] = {
        "song_length_quantiles": {
            str(q): float(v)
            for q, v in zip(QUANTILES, np.quantile(cat.length_ms[rows], QUANTILES), strict=True)
        },
        "genre_count_share": {
            str(k) if k < 3 else "3+": float(np.mean(n_genres == k) if k < 3 else np.mean(n_genres >= 3))
            for k in range(4)
        },
        "composer_empty_share": float(np.mean(composer[rows] == "")),
        "lyricist_empty_share": float(np.mean(lyricist[rows] == "")),
        "played_songs_without_songs_row": float(np.mean(~in_songs[:songs])),
    }

    names = _titles(text_rng, cat.language)
    isrc = _isrc(rng["isrc"], cat)
    rows = text_rng.permutation(np.flatnonzero(in_extra))
    _write_text(tmp["song_extra"], SONG_EXTRA_COLUMNS, [song_id[rows], _quote(names[rows]), isrc[rows]])
    _commit(tmp["song_extra"], paths["song_extra"], len(rows))
    file_stats["isrc_empty_share"] = float(np.mean(isrc[rows] == ""))

    split = pa.DictionaryArray.from_arrays(
        pa.array((np.arange(events) >= n_train).astype(np.int32)), pa.array(["train", "test"])
    )
    row = np.arange(events, dtype=np.int64)
    row[n_train:] -= n_train
    truth = pa.table({"split": split, "row": pa.array(row), "p_true": pa.array(np.round(p_true, 6))})
    _write_pyarrow(tmp["truth"], TRUTH_COLUMNS, truth)
    _commit(tmp["truth"], paths["truth"], events)
    return paths, file_stats


QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


def _rate_by(code: np.ndarray, names: list[str], target: np.ndarray) -> dict[str, float]:
    """Mean target per label (labels given as codes into ``names``), labels without rows left out."""
    count = np.bincount(code, minlength=len(names))
    total = np.bincount(code, weights=target, minlength=len(names))
    return {name: float(total[i] / count[i]) for i, name in enumerate(names) if count[i]}


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    s = np.sort(values)
    return s[np.concatenate([[True], s[1:] != s[:-1]])] if len(s) else s


def _statistics(
    ev_user: np.ndarray, ev_song: np.ndarray, combo: np.ndarray, combos: pd.DataFrame, target: np.ndarray,
    p_true: np.ndarray, n_train: int, members: pd.DataFrame, cat: _Catalog,
) -> dict[str, Any]:  # fmt: skip
    """The statistics of GenerationSummary.stats, measured on the generated events."""
    n_songs = len(cat.artist)
    y = target[:n_train].astype(np.float64)
    tr_song = ev_song[:n_train]
    h0 = int(n_train * 0.8)
    held_y = target[h0:n_train]
    two_classes = 0 < held_y.mean() < 1
    seen = np.bincount(tr_song[:h0], minlength=n_songs)
    key = ev_user.astype(np.int64) * n_songs + ev_song
    pairs = _sorted_unique(key)
    listeners = np.bincount(pairs % n_songs, minlength=n_songs)
    per_user = np.bincount(pairs // n_songs)
    del pairs
    rows_per_user = np.bincount(ev_user)
    train_keys = _sorted_unique(key[:n_train])
    pos = np.minimum(np.searchsorted(train_keys, key[n_train:]), len(train_keys) - 1)
    in_train = train_keys[pos] == key[n_train:]
    del key, train_keys, pos
    song_rows = np.bincount(tr_song, minlength=n_songs)
    song_rate = np.bincount(tr_song, weights=y, minlength=n_songs) / np.maximum(song_rows, 1)
    many = song_rows >= 5
    tab_names = list(TABS)
    tab_code = combos["tab_index"].to_numpy()[combo[:n_train]]
    type_names = sorted(set(combos["type"]))
    type_code = np.searchsorted(np.array(type_names), combos["type"].to_numpy(dtype=str))[combo[:n_train]]
    length_names = ["<2 min", "2-3 min", "3-5 min", "5-7 min", ">=7 min"]
    length_code = np.digitize(cat.length_ms[tr_song], [120_000, 180_000, 300_000, 420_000])
    age_names = ["unknown", "5-25", "26-35", "36-45", "46-74"]
    bd = members["bd"].to_numpy()[ev_user[:n_train]]
    age_code = np.where((bd < 5) | (bd > 74), 0, np.digitize(bd, [26, 36, 46]) + 1)
    train_songs = np.bincount(tr_song, minlength=n_songs) > 0
    test_songs = np.bincount(ev_song[n_train:], minlength=n_songs) > 0
    return {
        "target_rate": float(y.mean()),
        "p_true_mean": float(p_true[:n_train].mean()),
        "test_p_true_mean": float(p_true[n_train:].mean()),
        "oracle_auc": float(roc_auc_score(held_y, p_true[h0:n_train])) if two_classes else float("nan"),
        "popularity_auc": float(roc_auc_score(held_y, seen[tr_song[h0:]])) if two_classes else float("nan"),
        "single_listener_song_share": float(np.mean(listeners[listeners > 0] == 1)),
        "median_songs_per_user": float(np.median(per_user)),
        "events_per_user": {
            **{
                str(q): float(v)
                for q, v in zip(QUANTILES, np.quantile(rows_per_user, QUANTILES), strict=True)
            },
            "max": float(rows_per_user.max()),
        },
        "tab_share": {
            name: float(c) / n_train
            for name, c in zip(tab_names, np.bincount(tab_code, minlength=len(tab_names)), strict=True)
        },
        "tab_rate": _rate_by(tab_code, tab_names, y),
        "type_rate": _rate_by(type_code, type_names, y),
        "length_rate": _rate_by(length_code, length_names, y),
        "age_rate": _rate_by(age_code, age_names, y),
        "popularity_repeat_spearman": float(spearmanr(song_rows[many], song_rate[many]).statistic)
        if many.sum() > 2
        else float("nan"),
        "bd_zero_share": float(np.mean(members["bd"].to_numpy() == 0)),
        "gender_empty_share": float(np.mean(members["gender"].to_numpy() == "")),
        "test_rows_with_train_pair": float(np.mean(in_train)),
        "train_users": int(np.count_nonzero(np.bincount(ev_user[:n_train]))),
        "test_users": int(np.count_nonzero(np.bincount(ev_user[n_train:]))),
        "test_songs_new": float(np.mean(~train_songs[test_songs])),
    }


def run(cfg: Config) -> dict[str, Any]:
    """Stage entry of ``relisten generate``: write the synthetic KKBOX files into ``data.raw_dir``."""
    raw_dir = cfg.data.raw_dir
    if "://" in raw_dir or raw_dir.startswith("dbfs:"):
        raise ConfigError(f"data.raw_dir must be a local directory for generate, got {raw_dir}")
    syn = cfg.data.synthetic
    summary = generate(Path(raw_dir), syn.users, syn.songs, syn.events, syn.seed, syn.test_fraction)
    st = summary.stats
    return {
        "raw_dir": str(summary.out_dir),
        "users": summary.users,
        "songs": summary.songs,
        "train_rows": summary.train_rows,
        "test_rows": summary.test_rows,
        "target_rate": round(st["target_rate"], 4),
        "oracle_auc_last_20pct_train": round(st["oracle_auc"], 4),
        "popularity_auc_last_20pct_train": round(st["popularity_auc"], 4),
        "seconds": round(summary.seconds, 1),
    }
