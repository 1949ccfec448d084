"""Benchmark: the thesis's own pandas feature chain against the engine's ``ingest`` + ``features``,
side by side on the same generated data (prints figures; not a test).

The thesis repository (``Mike-cloud-17/Masters_Diploma_Music_Recomendation_System`` on GitHub) is
fetched by whoever runs the bench and never committed; ``--thesis-repo`` points at its clone. Per
``--events`` size (users and songs scaled like the generator's defaults, 60 and 15 events each):

1. ``relisten generate`` writes the KKBOX CSVs once under ``<root>/<events>/raw``;
2. the thesis chain, unchanged: its ``preprocessing/training`` folder is copied into a work
   folder beside ``source_data`` (the generated CSVs) and ``temporal_data``, and its ``run.sh``
   runs ``step_1.py`` ... ``step_8.py`` with this interpreter as ``python``;
3. the engine, one ``relisten`` process per command as a user runs them (JVM start included):
   ``ingest``, then ``features`` (the default profile), into a fresh lake.

Wall time and peak memory (the process tree's summed RSS) of each side, and the engine/thesis
ratio (target at 100k events: at most 0.5). Run it on an idle machine.

    git clone https://github.com/Mike-cloud-17/Masters_Diploma_Music_Recomendation_System /tmp/thesis
    .venv/bin/python bench/thesis_features.py --thesis-repo /tmp/thesis
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from peak_memory import PeakMemory

RELISTEN = Path(sys.executable).with_name("relisten")


def sizes(events: int) -> dict[str, int]:
    """The generator's size for ``events`` (users and songs as its defaults: 60k, 1k, 4k)."""
    return {"events": events, "users": max(2, events // 60), "songs": max(2, events // 15)}


def overrides(root: Path, size: dict[str, int]) -> list[str]:
    items = [
        f"lake.root={root / 'lakehouse'}",
        f"models.root={root / 'models'}",
        f"data.raw_dir={root / 'raw'}",
        *[f"data.synthetic.{key}={value}" for key, value in size.items()],
    ]
    return [arg for item in items for arg in ("--set", item)]


def timed(command: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> tuple[float, int]:
    """(wall seconds, peak bytes) of ``command``; its output goes to ``log``; a failure exits."""
    with log.open("w") as out, PeakMemory() as memory:
        started = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed with exit code {done.returncode}: see {log}")
    return wall, memory.peak


def thesis_chain(repo: Path, raw: Path, work: Path) -> tuple[float, int]:
    """The thesis's ``preprocessing/training/run.sh`` on the CSVs in ``raw``."""
    chain = repo / "preprocessing" / "training"
    if not (chain / "run.sh").is_file():
        sys.exit(f"{chain / 'run.sh'} not found: --thesis-repo must be a clone of the thesis repository")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(chain, work / "training")
    (work / "source_data").symlink_to(raw.absolute(), target_is_directory=True)
    (work / "temporal_data").mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return timed(["bash", "run.sh"], work / "training", work / "thesis.log", env)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--thesis-repo", type=Path, required=True, help="a clone of the thesis repository")
    parser.add_argument("--events", type=lambda s: [int(n) for n in s.split(",")], default=[100_000, 300_000])
    parser.add_argument("--root", type=Path, default=Path("bench/out/thesis"))
    args = parser.parse_args()

    rows = []
    for events in args.events:
        root = (args.root / str(events)).absolute()
        size = sizes(events)
        shutil.rmtree(root / "lakehouse", ignore_errors=True)
        shutil.rmtree(root / "models", ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        if not (root / "raw" / "train.csv").is_file():
            timed([str(RELISTEN), "generate", *overrides(root, size)], Path.cwd(), root / "generate.log")
        print(f"{events:,} events ({size['users']:,} users, {size['songs']:,} songs):", flush=True)
        thesis_s, thesis_peak = thesis_chain(args.thesis_repo, root / "raw", root / "thesis")
        print(f"  thesis chain: {thesis_s:.1f} s, peak {thesis_peak / 2**20:.0f} MiB", flush=True)
        ingest_s, ingest_peak = timed(
            [str(RELISTEN), "ingest", *overrides(root, size)], Path.cwd(), root / "ingest.log"
        )
        features_s, features_peak = timed(
            [str(RELISTEN), "features", *overrides(root, size)], Path.cwd(), root / "features.log"
        )
        engine_s = ingest_s + features_s
        print(
            f"  engine: ingest {ingest_s:.1f} s + features {features_s:.1f} s = {engine_s:.1f} s, "
            f"peak {max(ingest_peak, features_peak) / 2**20:.0f} MiB",
            flush=True,
        )
        rows.append((events, thesis_s, engine_s))
    print("\nevents      thesis s   engine s   engine/thesis")
    for events, thesis_s, engine_s in rows:
        print(f"{events:>9,}  {thesis_s:9.1f}  {engine_s:9.1f}   {engine_s / thesis_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
