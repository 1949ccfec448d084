"""``relisten vacuum``: Delta VACUUM of every table of the lake.

Each table keeps the files of the versions of the last ``lake.retention_hours`` and of the
version readers see (:func:`lake.committed_version`); files no such version needs (old
versions, untracked files of killed writes) and the staging folders of dead writers go.
``--dry-run`` lists them instead.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from deltalake import DeltaTable

from relisten_spark import lake_files, lake_log, runs
from relisten_spark.config import Config
from relisten_spark.errors import LakeError

log = logging.getLogger(__name__)


def vacuum_table(path: str, retention_hours: int, dry_run: bool = True) -> list[str]:
    """Delta VACUUM of the table at ``path`` (``full``: untracked files of killed writes go too)
    and removal of its dead writers' staging folders; the files of the newest and of the
    committed version are kept. Returns the files (relative to the table) deleted, or that would
    be deleted with ``dry_run``."""
    table = DeltaTable(path)
    keep = sorted({lake_log.committed_version(path), table.version()})
    files = table.vacuum(
        retention_hours=retention_hours,
        dry_run=dry_run,
        enforce_retention_duration=False,
        full=True,
        keep_versions=keep,
    )
    root = lake_log.local_path(path).rstrip("/")
    dead = lake_files.dead_staging(root) if lake_log.is_local(path) else []
    if not dry_run and dead:
        lake_files.remove_dead_staging(root)
    return sorted(str(f) for f in files) + [f"{lake_files.STAGING}/{name}" for name in dead]


def lake_tables(root: str) -> list[str]:
    """The Delta tables under ``root`` (``<root>/<layer>/<table>`` with a ``_delta_log``)."""
    if not os.path.isdir(root):
        raise LakeError(f"lake.root {root} is not a folder: nothing to vacuum")
    found = []
    for layer in sorted(os.listdir(root)):
        folder = os.path.join(root, layer)
        if not os.path.isdir(folder):
            continue
        found += [
            os.path.join(folder, name)
            for name in sorted(os.listdir(folder))
            if os.path.isdir(os.path.join(folder, name, "_delta_log"))
        ]
    return found


def run(cfg: Config) -> dict[str, Any]:
    """Vacuum every table of ``cfg.lake.root``; with ``--dry-run`` only list.

    Returns ``tables_checked``, ``files`` (deleted, or to delete) and, per table with any,
    the file names under ``deleted`` (``would_delete`` with ``--dry-run``)."""
    dry_run = runs.flags().dry_run
    root = cfg.lake.root.rstrip("/")
    listing: dict[str, list[str]] = {}
    tables = lake_tables(root)
    for path in tables:
        files = vacuum_table(path, cfg.lake.retention_hours, dry_run=dry_run)
        name = os.path.relpath(path, root).replace(os.sep, ".")
        if files:
            listing[name] = files
        log.info("vacuum %s: %d files %s", name, len(files), "to delete" if dry_run else "deleted")
    return {
        "dry_run": dry_run,
        "retention_hours": cfg.lake.retention_hours,
        "tables_checked": len(tables),
        "files": sum(len(f) for f in listing.values()),
        "would_delete" if dry_run else "deleted": listing,
    }
