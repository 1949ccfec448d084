"""Bad input through the real CLI: refused before anything is written, in one line, exit 2, no
stack trace; input that is merely unusual (BOM + CRLF, empty ids) is accepted or quarantined."""

from __future__ import annotations

import errno
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import KKBOX_HEADERS

from relisten_spark import lake, preflight
from relisten_spark.cli import main
from relisten_spark.config import Config
from relisten_spark.runs import runs_path

pytestmark = pytest.mark.spark

NOBODY = 65534
TRAIN_HEADER = KKBOX_HEADERS["train.csv"]
ROWS = {
    "train.csv": [
        "u1,s1,discover,Discover Feature,online-playlist,1",
        "u2,s2,my library,Local,local-library,0",
    ],
    "test.csv": ["0,u2,s1,discover,Discover Feature,online-playlist"],
    "members.csv": ["u1,1,0,,7,20110820,20170920", "u2,13,27,female,9,20150628,20170622"],
    "songs.csv": ["s1,247640,465,Artist,Composer,,3", "s2,200000,465,Other,,,3"],
    "song_extra_info.csv": ["s1,Song,TWUM71200043", "s2,Other song,TWUM71200044"],
}


def _files(overrides: dict[str, bytes | None] | None = None, eol: str = "\n", bom: bool = False) -> dict:
    files: dict[str, bytes | None] = {
        name: (("\ufeff" if bom else "") + eol.join([KKBOX_HEADERS[name], *ROWS[name]]) + eol).encode("utf-8")
        for name in KKBOX_HEADERS
    }
    files.update(overrides or {})
    return files


def _garbage() -> bytes:
    rng = random.Random(16)
    return b"\x00\x01PK" + bytes(rng.randrange(256) for _ in range(4000))


@dataclass(frozen=True)
class Case:
    """A raw dir (None: a file absent), extra --set keys, what the lake paths are, the outcome."""

    files: dict[str, bytes | None] = field(default_factory=_files)
    sets: tuple[str, ...] = ()
    lake: str = "dir"  # dir | file | under-file
    models: str = "dir"
    command: str = "ingest"
    error: str | None = None  # the text of the one error line; None: the command succeeds


LATIN1_TRAIN = (
    TRAIN_HEADER + "\nu1,s1,discover,Discover Feature,online-playlist,1\n"
    "u2,s2,d\xe9couverte,Local,local-library,0\n"
).encode("latin-1")
CASES = {
    "latin1_train": Case(_files({"train.csv": LATIN1_TRAIN}), error="train.csv: line 3 is not valid utf-8"),
    "latin1_train_with_encoding": Case(_files({"train.csv": LATIN1_TRAIN}), sets=("data.encoding=latin-1",)),
    "header_only_train": Case(
        _files({"train.csv": (TRAIN_HEADER + "\n").encode()}),
        error="train.csv: no data rows (header only); set data.allow_empty=true",
    ),
    "header_only_train_allowed": Case(
        _files({"train.csv": (TRAIN_HEADER + "\n").encode()}), sets=("data.allow_empty=true",)
    ),
    "binary_songs": Case(_files({"songs.csv": _garbage()}), error="songs.csv: not a text file"),
    "semicolon_train": Case(
        _files({"train.csv": (TRAIN_HEADER.replace(",", ";") + "\nu1;s1;a;b;c;1\n").encode()}),
        error="train.csv: not comma-separated (the header is split by ';')",
    ),
    "missing_file": Case(_files({"members.csv": None}), error="input file not found: "),
    "missing_column": Case(
        _files({"members.csv": b"msno,city,gender\nu1,1,male\n"}),
        error="members.csv: missing required column 'bd'",
    ),
    "lake_root_is_a_file": Case(lake="file", error="lake.root: "),
    "lake_root_under_a_file": Case(lake="under-file", error="lake.root: "),
    "models_root_is_a_file": Case(models="file", command="train-gbdt", error="models.root: "),
    "empty_ids_quarantined": Case(
        _files({"train.csv": (TRAIN_HEADER + "\nu1,s1,a,b,c,1\n,s2,a,b,c,0\nu2,,a,b,c,1\n").encode()})
    ),
    "bom_crlf": Case(_files(eol="\r\n", bom=True)),
}


def _paths(tmp_path: Path, case: Case) -> tuple[str, str, str]:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    where = {"dir": None, "file": str(blocker), "under-file": str(blocker / "sub")}
    lake_root = where[case.lake] or str(tmp_path / "lake")
    models_root = where[case.models] or str(tmp_path / "models")
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, content in case.files.items():
        if content is not None:
            (raw / name).write_bytes(content)
    return str(raw), lake_root, models_root


def _argv(command: str, *sets: str) -> list[str]:
    """The CLI arguments, with the test session's own Spark settings (the CLI applies them to it)."""
    spark = ("spark.master=local[2]", "spark.shuffle_partitions=2", "spark.driver_memory=2g")
    return [command, *[x for s in (*spark, *sets) for x in ("--set", s)]]


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("relisten ")]


@pytest.mark.parametrize(
    "name",
    # the accepted inputs write every table: slow (the parse itself is covered by tests/data)
    [pytest.param(n, marks=pytest.mark.slow) if c.error is None else n for n, c in CASES.items()],
)
def test_bad_input_is_one_line_before_any_write(name: str, tmp_path: Path, spark, capfd) -> None:
    case = CASES[name]
    raw, lake_root, models_root = _paths(tmp_path, case)
    sets = [f"data.raw_dir={raw}", f"lake.root={lake_root}", f"models.root={models_root}", *case.sets]
    code = main(_argv(case.command, *sets))

    err = capfd.readouterr().err
    for trace in ("Traceback", "\tat ", "Exception"):  # no Python or Java stack trace
        assert trace not in err, err
    events = lake.table_path(lake_root, "bronze", "events")
    if case.error is None:
        assert code == 0, err
        assert lake.exists(events)
        return
    assert code == 2
    [line] = _error_lines(err)
    assert line.startswith(f"relisten {case.command}: error: ")
    assert case.error in line
    if case.lake == "dir":
        assert not lake.exists(events)  # nothing written, but the failed run is recorded
        runs = lake.read(spark, runs_path(_cfg(lake_root))).collect()
        assert [(r["command"], r["status"]) for r in runs] == [(case.command, "failed")]


def _cfg(lake_root: str) -> Config:
    from relisten_spark.config import load_config

    return load_config(None, [f"lake.root={lake_root}"])


@pytest.mark.slow
def test_accepted_input_keeps_its_text_and_quarantines_empty_ids(spark, tmp_path: Path) -> None:
    """latin-1 read as latin-1 (no replacement character); empty ids quarantined with a reason."""
    rows = "\nu1,s1,d\xe9couverte,b,c,1\n,s2,a,b,c,0\nu2,,a,b,c,1\n"
    train = (TRAIN_HEADER + rows).encode("latin-1")
    raw, lake_root, _ = _paths(tmp_path, Case(_files({"train.csv": train})))
    sets = [f"data.raw_dir={raw}", f"lake.root={lake_root}", "data.encoding=latin-1"]
    assert main(_argv("ingest", *sets)) == 0

    events = lake.read(spark, lake.table_path(lake_root, "bronze", "events")).where("split = 'train'")
    assert [r["source_system_tab"] for r in events.collect()] == ["d\u00e9couverte"]
    quarantine = lake.read(spark, lake.table_path(lake_root, "bronze", "quarantine")).orderBy("line_number")
    assert [(r["line_number"], r["reason"]) for r in quarantine.collect()] == [
        (3, "empty msno"),
        (4, "empty song_id"),
    ]


def test_read_only_lake_is_refused_by_a_probe_write(tmp_path: Path, capfd) -> None:
    """A read-only lake.root, probed by a real write. Root ignores permission bits, so as root the
    command runs with the effective uid and gid of ``nobody`` (no Spark session starts: the probe
    comes first)."""
    folder = Path(tempfile.mkdtemp(prefix="relisten-ro-"))
    folder.chmod(0o555)
    as_root = os.geteuid() == 0
    try:
        if as_root:
            os.setegid(NOBODY)
            os.seteuid(NOBODY)
        try:
            code = main(["features", "--set", f"lake.root={folder}"])
        finally:
            if as_root:
                os.seteuid(0)
                os.setegid(0)
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)
    assert code == 2
    err = capfd.readouterr().err
    assert _error_lines(err) == [
        f"relisten features: error: lake.root: cannot write to {folder} (Permission denied)"
    ]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (OSError(errno.EROFS, "Read-only file system", "lake/bronze"), "read-only file system: lake/bronze"),
        (
            RuntimeError(
                "An error occurred while calling o61.save.\n"
                ": java.io.FileNotFoundException: lake/x/part-0 (Permission denied)\n"
                "\tat java.base/java.io.FileOutputStream.open0(Native Method)"
            ),
            "permission denied: java.io.FileNotFoundException: lake/x/part-0 (Permission denied)",
        ),
        (RuntimeError("[PATH_NOT_FOUND] Path does not exist: file:/raw/x.csv."), "path not found: "),
        (ValueError("a bug"), None),
    ],
)
def test_escaped_input_errors_become_one_line(exc: BaseException, line: str | None) -> None:
    error = preflight.input_error(exc)
    if line is None:
        assert error is None
    else:
        assert error is not None
        assert str(error).startswith(line)
        assert "\n" not in str(error)
