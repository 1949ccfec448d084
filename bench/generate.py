"""Benchmark of `relisten generate`: time, memory and the generated statistics next to their targets.

    python bench/generate.py [--users N --songs N --events N --seed S --out DIR --runs R]

Defaults to the full KKBOX scale (34,403 users, 419,839 songs, 9,934,208 events) written to
./data/bench/full. Prints wall and CPU seconds per run (the median over ``--runs``), the peak
resident memory of the process, and a table of statistics of the last run against the calibrated
figures (``relisten_spark/data/synthetic/calibration.py``) and the thesis's data analysis (chapter 3).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relisten_spark.data.synthetic.generator import GenerationSummary, generate

FULL = {"users": 34_403, "songs": 419_839, "events": 9_934_208}

# (label, key path into stats, target, where the target comes from)
ROWS: list[tuple[str, tuple[str, ...], str, str]] = [
    ("train target rate", ("target_rate",), "0.5035", "KKBOX public"),
    ("oracle AUC, last 20% of train", ("oracle_auc",), ">= 0.80", "brief"),
    ("popularity AUC, last 20% of train", ("popularity_auc",), "well below oracle", "brief"),
    ("songs with one listener", ("single_listener_song_share",), "0.62", "thesis 3.3"),
    ("median distinct songs per user", ("median_songs_per_user",), "~140", "thesis 3.2"),
    ("events per user q0.1", ("events_per_user", "0.1"), "", ""),
    ("events per user q0.5", ("events_per_user", "0.5"), "", ""),
    ("events per user q0.9", ("events_per_user", "0.9"), "~780 (distinct)", "thesis 3.2"),
    ("events per user q0.99", ("events_per_user", "0.99"), "", ""),
    ("events per user max", ("events_per_user", "max"), "", ""),
    ("spearman(song rows, song repeat rate)", ("popularity_repeat_spearman",), "~0.41", "thesis 3.4"),
    ("rate: song < 2 min", ("length_rate", "<2 min"), "~0.38", "thesis 3.5"),
    ("rate: song 3-5 min", ("length_rate", "3-5 min"), "~0.51", "thesis 3.5"),
    ("rate: song >= 7 min", ("length_rate", ">=7 min"), "~0.38", "thesis 3.5"),
    ("rate: age 5-25", ("age_rate", "5-25"), "~0.54", "thesis 3.8"),
    ("rate: age 36-45", ("age_rate", "36-45"), "~0.47", "thesis 3.8"),
    ("share tab my library", ("tab_share", "my library"), "0.725 / 0.454", "CAL 2.1 train/test head"),
    ("share tab discover", ("tab_share", "discover"), "0.177 / 0.355", "CAL 2.1"),
    ("share tab search", ("tab_share", "search"), "0.036 / 0.087", "CAL 2.1"),
    ("share tab radio", ("tab_share", "radio"), "0.032 / 0.062", "CAL 2.1"),
    ("share tab listen with", ("tab_share", "listen with"), "0.015 / 0.030", "CAL 2.1"),
    ("share tab explore", ("tab_share", "explore"), "0.010 / 0.011", "CAL 2.1"),
    ("share tab (empty)", ("tab_share", ""), "0.0025 / 0.0004", "CAL 2.1"),
    ("share tab null", ("tab_share", "null"), "0.0009 / 0.0002", "CAL 2.1"),
    ("rate: tab my library", ("tab_rate", "my library"), "0.848 (head, 76% overall)", "CAL 2.1"),
    ("rate: tab discover", ("tab_rate", "discover"), "0.611 (head)", "CAL 2.1"),
    ("rate: tab radio", ("tab_rate", "radio"), "0.244 (head)", "CAL 2.1"),
    ("rate: type local-library", ("type_rate", "local-library"), "0.849 (head)", "CAL 2.3"),
    ("rate: type radio", ("type_rate", "radio"), "0.246 (head)", "CAL 2.3"),
    ("members bd == 0", ("bd_zero_share",), "0.5794", "CAL 1.2"),
    ("members gender empty", ("gender_empty_share",), "0.5785", "CAL 1.3"),
    ("song_length q0.01", ("song_length_quantiles", "0.01"), "59811", "CAL 3"),
    ("song_length q0.1", ("song_length_quantiles", "0.1"), "161170", "CAL 3"),
    ("song_length q0.5", ("song_length_quantiles", "0.5"), "233639", "CAL 3"),
    ("song_length q0.9", ("song_length_quantiles", "0.9"), "322415", "CAL 3"),
    ("song_length q0.99", ("song_length_quantiles", "0.99"), "629184", "CAL 3"),
    ("songs with 0 genres", ("genre_count_share", "0"), "0.0179", "CAL 3.1"),
    ("songs with 1 genre", ("genre_count_share", "1"), "0.9173", "CAL 3.1"),
    ("songs with 2 genres", ("genre_count_share", "2"), "0.0503", "CAL 3.1"),
    ("songs with 3+ genres", ("genre_count_share", "3+"), "0.0144", "CAL 3.1"),
    ("composer empty", ("composer_empty_share",), "0.4199", "CAL 3.3"),
    ("lyricist empty", ("lyricist_empty_share",), "0.7272", "CAL 3.3"),
    ("isrc empty", ("isrc_empty_share",), "0.1337", "CAL 4"),
    ("test rows whose pair is in train", ("test_rows_with_train_pair",), "~0.125", "KKBOX ~320k/2.56M"),
    ("test songs not in train", ("test_songs_new",), "", ""),
    ("users with train rows", ("train_users",), "", ""),
    ("users with test rows", ("test_users",), "", ""),
]


def _lookup(stats: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = stats
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and (value.is_integer() or abs(value) >= 100):
        return f"{value:.0f}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=FULL["users"])
    parser.add_argument("--songs", type=int, default=FULL["songs"])
    parser.add_argument("--events", type=int, default=FULL["events"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--test-fraction", type=float, default=0.2574)
    parser.add_argument("--out", type=Path, default=Path("data/bench/full"))
    parser.add_argument("--runs", type=int, default=1, help="repeat and report the median time")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each stage")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(message)s"
    )
    args.out.mkdir(parents=True, exist_ok=True)

    walls, cpus = [], []
    summary: GenerationSummary | None = None
    for i in range(args.runs):
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        summary = generate(args.out, args.users, args.songs, args.events, args.seed, args.test_fraction)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        walls.append(wall)
        cpus.append(cpu)
        print(
            f"run {i + 1}/{args.runs}: wall {wall:.1f} s, cpu {cpu:.1f} s, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
    assert summary is not None
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sizes = {name: path.stat().st_size / 1e6 for name, path in summary.paths.items()}

    print()
    print(
        f"relisten generate: {summary.users} users, {summary.songs} songs, {summary.events} events "
        f"({summary.train_rows} train + {summary.test_rows} test), seed {summary.seed}, out {args.out}"
    )
    print(
        f"wall time  median {statistics.median(walls):.1f} s over {args.runs} run(s) (limit 600 s on 2 cores)"
    )
    print(f"cpu time   median {statistics.median(cpus):.1f} s (user + system, all threads)")
    print(f"peak RSS   {peak_mb:.0f} MB")
    print("files      " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in sizes.items()))
    print()
    width = max(len(r[0]) for r in ROWS)
    print(f"{'statistic':<{width}}  {'generated':>12}  {'target':<26}  source")
    print("-" * (width + 60))
    for label, path, target, source in ROWS:
        print(f"{label:<{width}}  {_fmt(_lookup(summary.stats, path)):>12}  {target:<26}  {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
