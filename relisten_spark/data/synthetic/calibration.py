"""Calibration tables of the synthetic KKBOX data: the marginals the generator reproduces.

Figures measured on the KKBOX competition files (section numbers ``CALIBRATION n.m`` name the
calibration notes that measured them) and the thesis's data analysis (chapter 3). Counts and
percentages are used as relative weights.
"""

from __future__ import annotations

# ---------------------------------------------------------------- scale and coverage
TARGET_RATE = 0.5035  # public KKBOX train figure; the thesis: 3.68M of 7.31M repeat
REPEAT_PAIR_SHARE = 0.125  # share of test rows whose pair is in train (KKBOX: ~320k of 2.56M)
SINGLE_LISTENER_SHARE = 0.62  # thesis 3.3
EXTRA_SONG_SHARE = 0.02  # songs.csv rows never played
NO_SONG_META_SHARE = 0.003  # played songs missing from songs.csv (and song_extra_info.csv)
NO_EXTRA_META_SHARE = 0.002  # further played songs missing from song_extra_info.csv only
ID_COLLISIONS_PER_MEMBER = 12 / 34403  # song ids equal to a member id (CALIBRATION 5)
VARIOUS_ARTISTS_SHARE = 0.035  # KKBOX songs head: 4.64%

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

# ---------------------------------------------------------------- name separators (CALIBRATION 3.3)
# separators between the names of one credit and their shares among multi-name values
CREDIT_SEPARATORS = {
    "|": 0.893,
    "/": 0.060,
    ";": 0.017,
    " & ": 0.011,
    " and ": 0.006,
    "、": 0.007,
    "+": 0.006,
}
# separators of combined artist names ("A & B", "A feat. B")
ARTIST_SEPARATORS = {
    " & ": 0.40,
    "|": 0.27,
    " and ": 0.10,
    " feat. ": 0.07,
    " / ": 0.08,
    " + ": 0.07,
    "、": 0.01,
}
