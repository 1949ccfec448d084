"""Preflight: what a command checks before it reads or writes anything, and the one-line form
of the input errors that still escape from Spark, Java or the filesystem.

* :func:`check_lake` — every command but ``generate`` needs ``lake.root`` to be a directory
  this process can create and write; :func:`check_models` — the trainers (``train-*``) need
  the same of ``models.root``. Both write and remove a real probe file; a root on a remote
  filesystem (``s3a://``, ``abfss://``, ``dbfs:`` ...) is left to the stage itself.
* :func:`check_header_line` — the first line of an input CSV: text (no NUL or control
  bytes), valid in the configured encoding, comma-separated. The ingest checks the encoding
  of every other line and that a file has data rows (``data.allow_empty``).
* :func:`input_error` — an exception that escaped a stage, as an :class:`InputError` when
  its cause is input or environment (a path missing, unreadable, read-only, full, not a
  directory; bytes invalid in the file's encoding), else ``None`` (a bug: the trace stays).

Nothing here imports pyspark: the CLI calls it before a session exists.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

from relisten_spark.config import Config
from relisten_spark.errors import InputError, RelistenError

# commands that never touch lake.root
LAKE_FREE = frozenset({"generate"})
# the characters that separate a CSV header other than a comma
OTHER_DELIMITERS = (";", "\t", "|")
# (text in an escaped error, what it means): on the first line holding one, the first listed wins
_CAUSES = (
    ("Permission denied", "permission denied"),
    ("AccessDeniedException", "permission denied"),
    ("Read-only file system", "read-only file system"),
    ("No space left on device", "no space left on device"),
    ("Not a directory", "not a directory"),
    ("PATH_NOT_FOUND", "path not found"),
    ("FileNotFoundException", "file not found"),
    ("Mkdirs failed to create", "cannot create a directory"),
    ("MalformedInputException", "bytes invalid in the file's encoding (see data.encoding)"),
)
_OS_CAUSES = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.ENOTDIR, errno.EISDIR}
_REMOTE_PREFIXES = ("dbfs:", "s3:", "s3a:", "s3n:", "abfs:", "abfss:", "gs:", "hdfs:", "wasb:", "wasbs:")


def local_path(path: str) -> str | None:
    """``path`` as a local filesystem path (``file:`` prefixes removed); None when it names a
    remote filesystem.

    >>> local_path("file:///data/lake"), local_path("lake"), local_path("s3a://bucket/lake")
    ('/data/lake', 'lake', None)
    """
    local = path[len("file://") :] if path.startswith("file://") else path.removeprefix("file:")
    if "://" in local or local.startswith(_REMOTE_PREFIXES):
        return None
    return local


def check_writable_dir(key: str, path: str) -> None:
    """Create ``path`` (the value of config key ``key``) if needed and write and remove a probe
    file in it; raise :class:`InputError` naming the key and the path when that fails."""
    local = local_path(path)
    if local is None:
        return
    folder = Path(local)
    probe = folder / f".relisten-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"probe")
        probe.unlink()
    except FileExistsError:
        raise InputError(f"{key}: {path} is a file, not a directory") from None
    except NotADirectoryError:
        raise InputError(f"{key}: {path} lies under a file, not a directory") from None
    except OSError as exc:
        raise InputError(f"{key}: cannot write to {path} ({exc.strerror or exc})") from None


def check_lake(command: str, cfg: Config) -> None:
    """``lake.root`` is a writable directory, for every command that reads or writes the lake."""
    if command not in LAKE_FREE:
        check_writable_dir("lake.root", cfg.lake.root)


def check_models(command: str, cfg: Config) -> None:
    """``models.root`` is a writable directory, for the trainers (``train-*``)."""
    if command.startswith("train-"):
        check_writable_dir("models.root", cfg.models.root)


def check_header_line(path: str, line: str, valid: bool, encoding: str) -> str:
    """The header line of the CSV ``path`` without its BOM and ``\\r``, checked.

    ``line`` is the first line as read in ``encoding``; ``valid`` whether its bytes were valid
    in it. Raises :class:`InputError` naming the file when the line holds binary data, is not
    valid in ``encoding`` or separates its fields by something else than a comma.
    """
    text = line.removeprefix("\ufeff").removesuffix("\r")
    if any(ch < " " and ch != "\t" for ch in text) or "\x7f" in text:
        raise InputError(f"{path}: not a text file (control or NUL bytes in line 1); expected a CSV file")
    if not valid:
        raise InputError(invalid_text(path, 1, encoding))
    if "," not in text:
        other = [d for d in OTHER_DELIMITERS if d in text]
        if other:
            raise InputError(
                f"{path}: not comma-separated (the header is split by {other[0]!r}); expected a CSV file"
            )
    return text


def invalid_text(path: str, line_number: int, encoding: str) -> str:
    """The message for bytes that are invalid in ``encoding`` (never replaced silently)."""
    hint = (
        "set data.encoding to the file's encoding, e.g. latin-1"
        if encoding == "utf-8"
        else "check data.encoding"
    )
    return f"{path}: line {line_number} is not valid {encoding} ({hint})"


def input_error(exc: BaseException) -> RelistenError | None:
    """``exc`` as a one-line :class:`InputError` when input or environment caused it, else None."""
    if isinstance(exc, RelistenError):
        return exc
    if isinstance(exc, OSError) and exc.errno in _OS_CAUSES:
        where = f": {exc.filename}" if exc.filename else ""
        return InputError(f"{(exc.strerror or str(exc)).lower()}{where}")
    for line in str(exc).splitlines():
        for needle, cause in _CAUSES:
            if needle in line:
                return InputError(f"{cause}: {line.strip().lstrip(': ')[:300]}")
    return None
