"""``relisten <command> --conf conf/local.yaml [--set key=value ...]``.

The same commands run as ``python -m relisten_spark <command>`` and as
``spark-submit jobs/<command>.py``. Each command builds the config and the session, calls one
stage function ``run(spark, cfg) -> dict`` and prints its summary. Errors caused by input or
config print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from relisten_spark.config import Config, load_config
from relisten_spark.errors import RelistenError

log = logging.getLogger("relisten")

# command -> (module, needs a Spark session)
STAGES: dict[str, tuple[str, bool]] = {
    "generate": ("relisten_spark.data.synthetic.generator", False),
    "ingest": ("relisten_spark.data.kkbox", True),
    "features": ("relisten_spark.features.build", True),
    "train-gbdt": ("relisten_spark.models.gbdt.stage", True),
    "train-nets": ("relisten_spark.models.ddp.stage", True),
    "train-stack": ("relisten_spark.models.stack", True),
    "evaluate": ("relisten_spark.evaluation.evaluate", True),
    "score": ("relisten_spark.scoring.score", True),
}
COMMANDS = [*STAGES, "pipeline"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relisten", description="relisten_spark batch engine commands")
    parser.add_argument("command", choices=COMMANDS, help="the stage to run ('pipeline' runs all)")
    parser.add_argument("--conf", default=None, help="YAML config (default: built-in defaults)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set scoring.top_n=10 (repeatable)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _stage_fn(command: str) -> Callable[..., dict[str, Any]]:
    module = importlib.import_module(STAGES[command][0])
    return module.run


def check_java() -> None:
    """Spark needs Java 17 or 21; stop with one line saying how to get it."""
    if shutil.which("java") is None:
        raise RelistenError(
            "Java not found: install Java 17 (e.g. `apt-get install openjdk-17-jre-headless`)"
        )
    out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr
    first = out.splitlines()[0] if out else ""
    major = first.split('"')[1].split(".")[0] if '"' in first else ""
    if major not in {"17", "21"}:
        raise RelistenError(f"Spark 4 needs Java 17 or 21, found: {first or 'unknown'} (install openjdk-17)")


# stages that run once per feature profile in a pipeline, and the config key they read it from
PROFILE_KEYS = {
    "features": "features",
    "train-gbdt": "gbdt",
    "train-nets": "nets",
    "train-stack": "stack",
}


def plan(command: str, cfg: Config) -> list[tuple[str, Config]]:
    """The (stage, config) steps of ``command``: ``pipeline`` expands to every configured stage,
    the profile-dependent ones once per ``pipeline.profiles``."""
    if command != "pipeline":
        return [(command, cfg)]
    stages = list(cfg.pipeline.stages)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise RelistenError(f"unknown pipeline stage(s) in pipeline.stages: {', '.join(unknown)}")
    if not cfg.pipeline.generate or cfg.data.source == "kkbox":
        stages = [s for s in stages if s != "generate"]
    steps: list[tuple[str, Config]] = []
    for stage in stages:
        if stage not in PROFILE_KEYS:
            steps.append((stage, cfg))
            continue
        section = PROFILE_KEYS[stage]
        for profile in cfg.pipeline.profiles:
            sub = getattr(cfg, section).model_copy(update={"profile": profile})
            steps.append((stage, cfg.model_copy(update={section: sub})))
    return steps


def run_command(command: str, cfg: Config) -> list[tuple[str, dict[str, Any], float]]:
    """Run one stage, or every step of ``pipeline``; return (stage, summary, seconds) per step."""
    spark = None
    results = []
    for stage, step_cfg in plan(command, cfg):
        needs_spark = STAGES[stage][1]
        if needs_spark and spark is None:
            check_java()
            from relisten_spark.session import build_session

            spark = build_session(cfg.spark)
        label = (
            stage
            if stage not in PROFILE_KEYS
            else f"{stage} [{getattr(step_cfg, PROFILE_KEYS[stage]).profile}]"
        )
        log.info("stage %s: starting", label)
        started, clock = datetime.now(UTC), time.perf_counter()
        fn = _stage_fn(stage)
        try:
            summary = (fn(spark, step_cfg) if needs_spark else fn(step_cfg)) or {}
        except Exception as exc:
            if spark is not None:
                _record(spark, step_cfg, stage, started, "failed", f"{type(exc).__name__}: {exc}"[:2000], {})
            raise
        elapsed = time.perf_counter() - clock
        if spark is not None:
            _record(spark, step_cfg, stage, started, "succeeded", "", summary)
        log.info("stage %s: done in %.1f s", label, elapsed)
        results.append((label, summary, elapsed))
    return results


def _record(
    spark: Any, cfg: Config, stage: str, started: datetime, status: str, message: str, summary: dict[str, Any]
) -> None:
    """One gold.runs row per stage run; a failure to record never hides the stage's own outcome."""
    from relisten_spark.runs import new_run_id, record_run

    run_id = str(summary.get("run_id") or new_run_id(stage))
    try:
        record_run(spark, cfg, run_id, stage, started, datetime.now(UTC), status, message, summary)
    except Exception as exc:  # the lake itself may be what failed
        log.warning("could not record the run of %s in gold.runs: %s", stage, exc)


def format_summary(results: Sequence[tuple[str, dict[str, Any], float]]) -> str:
    """A short human summary: one block per stage with its elapsed time."""
    lines = []
    for stage, summary, elapsed in results:
        lines.append(f"== {stage} ({elapsed:.1f} s)")
        for key, value in summary.items():
            text = json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
            lines.append(f"   {key}: {text}")
    total = sum(r[2] for r in results)
    lines.append(f"== total {total:.1f} s")
    for _, summary, _ in results:  # what a run leaves for its readers, last
        if "report" in summary:
            lines.append(f"report: {summary['report']}")
        for table, where in (summary.get("tables") or {}).items():
            lines.append(f"{table}: {where}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        cfg = load_config(args.conf, args.overrides)
        results = run_command(args.command, cfg)
    except RelistenError as exc:
        print(f"relisten {args.command}: error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
