"""CSV writers of the synthetic KKBOX files: KKBOX's exact format, each file written atomically.

UTF-8, LF line ends, no BOM, a header line; a field is quoted only when it holds a ``"``
(doubled inside) or a TAB, as in the real files; no field holds a comma or a newline.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from relisten_spark.data.synthetic.events import Events
from relisten_spark.data.synthetic.sampling import CHUNK
from relisten_spark.data.synthetic.song_metadata import SongMetadata

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
# key -> (file name, header columns)
FILES = {
    "train": ("train.csv", TRAIN_COLUMNS),
    "test": ("test.csv", TEST_COLUMNS),
    "members": ("members.csv", MEMBERS_COLUMNS),
    "songs": ("songs.csv", SONGS_COLUMNS),
    "song_extra": ("song_extra_info.csv", SONG_EXTRA_COLUMNS),
    "truth": ("truth.csv", TRUTH_COLUMNS),
}


def write_files(
    out_dir: Path, msno: np.ndarray, song_id: np.ndarray, members: pd.DataFrame, length_ms: np.ndarray,
    meta: SongMetadata, ev: Events,
) -> dict[str, Path]:  # fmt: skip
    """Write the six files into ``out_dir`` (each under a temporary name, then renamed); their paths.

    ``msno`` and ``song_id`` map member and song indices to ids; ``members`` holds members.csv's
    rows in file order, ``length_ms`` the length of each catalogue song.
    """
    paths = {key: out_dir / name for key, (name, _) in FILES.items()}
    _write_events(paths, msno, song_id, ev)
    with _committed(paths["members"], len(members)) as tmp:
        _write_pyarrow(tmp, MEMBERS_COLUMNS, pa.Table.from_pandas(members, preserve_index=False))
    rows = meta.songs_rows
    with _committed(paths["songs"], len(rows)) as tmp:
        _write_text(
            tmp,
            SONGS_COLUMNS,
            [song_id[rows], length_ms.astype(str).astype(object)[rows], meta.genre_ids[rows],
             _quote(meta.artist_name[rows]), _quote(meta.composer[rows]), _quote(meta.lyricist[rows]),
             meta.language[rows]],
        )  # fmt: skip
    rows = meta.extra_rows
    with _committed(paths["song_extra"], len(rows)) as tmp:
        _write_text(tmp, SONG_EXTRA_COLUMNS, [song_id[rows], _quote(meta.name[rows]), meta.isrc[rows]])
    _write_truth(paths["truth"], ev)
    return paths


def _write_events(paths: dict[str, Path], msno: np.ndarray, song_id: np.ndarray, ev: Events) -> None:
    """train.csv (with target) and test.csv (with id): the event log cut at ``ev.n_train``."""
    events = len(ev.user)
    msno_dict = pa.array(msno.astype(str), pa.string())
    song_dict = pa.array(song_id.astype(str), pa.string())

    def event_table(sl: slice) -> dict[str, pa.Array]:
        c = ev.combo[sl]
        return {
            "msno": pa.DictionaryArray.from_arrays(pa.array(ev.user[sl].astype(np.int32)), msno_dict),
            "song_id": pa.DictionaryArray.from_arrays(pa.array(ev.song[sl].astype(np.int32)), song_dict),
            "source_system_tab": _dict_column(c, ev.combos["tab"].to_numpy(dtype=object)),
            "source_screen_name": _dict_column(c, ev.combos["screen"].to_numpy(dtype=object)),
            "source_type": _dict_column(c, ev.combos["type"].to_numpy(dtype=object)),
        }

    n_train = ev.n_train
    with _committed(paths["train"], n_train) as tmp:
        cols = event_table(slice(0, n_train))
        cols["target"] = pa.array(ev.target[:n_train])
        _write_pyarrow(tmp, TRAIN_COLUMNS, pa.table(cols))
    with _committed(paths["test"], events - n_train) as tmp:
        cols = {
            "id": pa.array(np.arange(events - n_train, dtype=np.int64)),
            **event_table(slice(n_train, events)),
        }
        _write_pyarrow(tmp, TEST_COLUMNS, pa.table(cols))


def _write_truth(path: Path, ev: Events) -> None:
    """truth.csv: ``[split, row, p_true]`` per event, ``row`` counted within its split."""
    events = len(ev.user)
    split = pa.DictionaryArray.from_arrays(
        pa.array((np.arange(events) >= ev.n_train).astype(np.int32)), pa.array(["train", "test"])
    )
    row = np.arange(events, dtype=np.int64)
    row[ev.n_train :] -= ev.n_train
    truth = pa.table({"split": split, "row": pa.array(row), "p_true": pa.array(np.round(ev.p_true, 6))})
    with _committed(path, events) as tmp:
        _write_pyarrow(tmp, TRUTH_COLUMNS, truth)


def _write_pyarrow(path: Path, columns: tuple[str, ...], table: pa.Table) -> None:
    """Write ``table`` under a plain header line; values are never quoted (none need it)."""
    with pa.OSFile(str(path), "wb") as sink:
        sink.write((",".join(columns) + "\n").encode())
        opts = pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=CHUNK)
        pacsv.write_csv(table, sink, opts)


def _quote(values: np.ndarray) -> np.ndarray:
    """KKBOX quoting: a field with ``"`` or TAB is quoted, inner quotes doubled.

    >>> _quote(np.array(['a "b" c', "d\\te", "f"], dtype=object)).tolist()
    ['"a ""b"" c"', '"d\\te"', 'f']
    """
    s = pd.Series(values, dtype=object)
    need = (s.str.contains('"', regex=False) | s.str.contains("\t", regex=False)).to_numpy()
    out = values.copy()
    out[need] = '"' + s[need].str.replace('"', '""', regex=False).to_numpy(dtype=object) + '"'
    return out


def _write_text(path: Path, columns: tuple[str, ...], fields: list[np.ndarray]) -> None:
    """Write string columns (already quoted where needed) joined by commas, one line per row."""
    line = fields[0].astype(object)
    for f in fields[1:]:
        line = line + "," + f
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(",".join(columns) + "\n")
        for lo in range(0, len(line), CHUNK):
            fh.write("\n".join(line[lo : lo + CHUNK]) + "\n")


@contextmanager
def _committed(path: Path, rows: int) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed to ``path`` when the block completes."""
    tmp = path.with_name(path.name + ".tmp")
    yield tmp
    os.replace(tmp, path)
    log.info("wrote %s (%d rows)", path, rows)


def _dict_column(index: np.ndarray, values: np.ndarray) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(
        pa.array(index.astype(np.int32)), pa.array(values.astype(str), pa.string())
    )
