"""Person, act and song names of the synthetic catalogue, in the scripts of the song languages."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from relisten_spark.data.synthetic.sampling import char_strings, draw_rows, pick


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
# language -> shares of the name scripts (SCRIPTS order: latin person, band, caps, cjk, cjk with
# English alias, kana, hangul, thai)
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


def _coined(rng: np.random.Generator, n: int) -> np.ndarray:
    """Made-up capitalised names of two syllables and an optional coda ("Dalven", "Korima")."""
    onset = _words("B C D F G H J K L M N P R S T V W Z Br Ch Dr Gr Kr St Tr Sh")
    vowel = _words("a e i o u ai ei ou")
    coda = _words("n r s l m nd rt ck x")
    word = pick(rng, onset, n) + pick(rng, vowel, n) + pick(rng, onset, n) + pick(rng, vowel, n)
    word = np.where(rng.random(n) < 0.4, word + pick(rng, coda, n), word)
    return pd.Series(word).str.capitalize().to_numpy(dtype=object)


def _latin_person(rng: np.random.Generator, n: int) -> np.ndarray:
    """ "First Last", "F. Last"; common names mixed with coined ones so that names rarely collide."""
    first = np.where(rng.random(n) < 0.3, _coined(rng, n), pick(rng, LATIN_FIRST, n))
    initial = rng.random(n) < 0.12  # "C. Kelly"
    first = np.where(initial, pd.Series(first).str.slice(0, 1).to_numpy(dtype=object) + ".", first)
    last = np.where(rng.random(n) < 0.6, _coined(rng, n), pick(rng, LATIN_LAST, n))
    return first + " " + last


def _band(rng: np.random.Generator, n: int) -> np.ndarray:
    """ "The Neon Wolves", "Dalven Hearts"."""
    the = np.where(rng.random(n) < 0.4, "The ", "")
    adjective = np.where(rng.random(n) < 0.6, _coined(rng, n), pick(rng, BAND_ADJ, n))
    return the + adjective + " " + pick(rng, BAND_NOUN, n)


def _caps(rng: np.random.Generator, n: int) -> np.ndarray:
    """Upper-case acts: random letters or two syllables ("KAMI", "TWICE")."""
    names = char_strings(rng, "ABCDEFGHIJKLMNOPRSTUVWXYZ", n, 3, 8)
    syll = CAPS_SYLLABLES
    return np.where(rng.random(n) < 0.2, pick(rng, syll, n) + pick(rng, syll, n), names)


def _cjk(rng: np.random.Generator, n: int) -> np.ndarray:
    """A surname and a given name of one or two characters."""
    given = char_strings(rng, CJK_GIVEN, n, 2, 2)
    given = np.where(rng.random(n) < 0.2, pd.Series(given).str.slice(0, 1).to_numpy(dtype=object), given)
    return char_strings(rng, CJK_SURNAMES, n, 1, 1) + given


def _cjk_alias(rng: np.random.Generator, n: int) -> np.ndarray:
    """A CJK name with its English alias in brackets."""
    return _cjk(rng, n) + " (" + _latin_person(rng, n) + ")"


def _kana(rng: np.random.Generator, n: int) -> np.ndarray:
    """A Japanese surname and hiragana, or katakana; a quarter behind a Latin name."""
    names = np.where(
        rng.random(n) < 0.5,
        pick(rng, JP_SURNAMES, n) + char_strings(rng, HIRAGANA, n, 2, 3),
        char_strings(rng, KATAKANA, n, 3, 6),
    )
    return np.where(rng.random(n) < 0.25, _latin_person(rng, n) + " (" + names + ")", names)


def _hangul(rng: np.random.Generator, n: int) -> np.ndarray:
    return char_strings(rng, HANGUL, n, 2, 3)


def _thai(rng: np.random.Generator, n: int) -> np.ndarray:
    return char_strings(rng, THAI, n, 4, 9)


_NAME_MAKERS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "person": _latin_person,
    "band": _band,
    "caps": _caps,
    "cjk": _cjk,
    "cjk_alias": _cjk_alias,
    "kana": _kana,
    "hangul": _hangul,
    "thai": _thai,
}
SCRIPTS = tuple(_NAME_MAKERS)  # a script code is an index into this tuple


def names(rng: np.random.Generator, script: np.ndarray) -> np.ndarray:
    """A person or act name per element, in the script given by its index into SCRIPTS."""
    out = np.empty(len(script), dtype=object)
    for code, kind in enumerate(SCRIPTS):
        sel = np.flatnonzero(script == code)
        if len(sel):
            out[sel] = _NAME_MAKERS[kind](rng, len(sel))
    return out


def nicknamed(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` names with a quoted nickname: ``First "Nick" Last``."""
    return pick(rng, LATIN_FIRST, n) + ' "' + pick(rng, NICKNAMES, n) + '" ' + pick(rng, LATIN_LAST, n)


def script_of(rng: np.random.Generator, language: np.ndarray) -> np.ndarray:
    """Draw a SCRIPTS index per element from its language's script mix."""
    langs = list(SCRIPT_BY_LANGUAGE)
    lang_index = np.searchsorted(np.array(sorted(langs)), language)
    table = np.array([SCRIPT_BY_LANGUAGE[lang] for lang in sorted(langs)], dtype=np.float64)
    table /= table.sum(axis=1, keepdims=True)
    return draw_rows(rng, lang_index, table)


# script -> alphabet and length range of the titles not written in Latin letters
TITLE_ALPHABETS = (
    ("cjk", CJK_TITLE, 2, 6),
    ("cjk_alias", CJK_TITLE, 2, 6),
    ("kana", HIRAGANA + KATAKANA, 3, 8),
    ("hangul", HANGUL, 2, 6),
    ("thai", THAI, 4, 10),
)


def titles(rng: np.random.Generator, language: np.ndarray) -> np.ndarray:
    """song_extra_info.name: titles in the script of the song's language, with KKBOX's decorations."""
    n = len(language)
    script = script_of(rng, language)
    latin = np.isin(script, [SCRIPTS.index("person"), SCRIPTS.index("band"), SCRIPTS.index("caps")])
    words = rng.integers(1, 5, n)
    title = pick(rng, TITLE_WORDS, n)
    for j in range(1, 4):
        sel = np.flatnonzero(latin & (words > j))
        title[sel] = title[sel] + " " + pick(rng, TITLE_WORDS, len(sel))
    for kind, alphabet, lo, hi in TITLE_ALPHABETS:
        sel = np.flatnonzero(script == SCRIPTS.index(kind))
        title[sel] = char_strings(rng, alphabet, len(sel), lo, hi)
    comma = np.flatnonzero(rng.random(n) < 0.01)  # a comma replaced upstream: "Aloha| E Komo Mai"
    title[comma] = title[comma] + "| " + pick(rng, TITLE_WORDS, len(comma))
    suffix = np.flatnonzero(rng.random(n) < 0.15)
    title[suffix] = title[suffix] + " " + pick(rng, TITLE_SUFFIXES, len(suffix))
    quoted = np.flatnonzero(rng.random(n) < 0.0081)
    drama = np.where(rng.random(len(quoted)) < 0.5, '(From KBS Drama "', '(電影"')
    title[quoted] = title[quoted] + " " + drama + pick(rng, TITLE_WORDS, len(quoted)) + '")'
    title = np.where(
        rng.random(n) < 0.2,
        pd.Series(title).str.replace(" (", "(", n=1, regex=False).to_numpy(dtype=object),
        title,
    )
    title[rng.random(n) < 2.5e-5] = "Unknown"
    return title
