"""``relisten <command> --conf conf/local.yaml [--set key=value ...]``.

The same commands run as ``python -m relisten_spark <command>`` and as
``spark-submit jobs/<command>.py``. Each command builds the config and the session, calls one
stage function ``run(spark, cfg) -> dict`` and prints its summary. Errors caused by input or
config print one line and exit 2. ``relisten <command> --help`` says what the command reads,
writes and which config keys matter to it (:data:`DOCS`); ``relisten config show`` prints the
effective config with every key's description; ``relisten --version`` the package version.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

import relisten_spark
from relisten_spark import preflight
from relisten_spark.compat import check_versions
from relisten_spark.config import Config, commented_yaml, load_config
from relisten_spark.errors import RelistenError

log = logging.getLogger("relisten")

# command -> (module, needs a Spark session)
STAGES: dict[str, tuple[str, bool]] = {
    "generate": ("relisten_spark.data.synthetic.generator", False),
    "ingest": ("relisten_spark.data.ingest", True),
    "features": ("relisten_spark.features.build", True),
    "train-gbdt": ("relisten_spark.models.gbdt.stage", True),
    "train-nets": ("relisten_spark.models.ddp.stage", True),
    "train-stack": ("relisten_spark.models.stack", True),
    "train-retriever": ("relisten_spark.retrieval.train", True),
    "finetune-retriever": ("relisten_spark.scoring.distil", True),
    "candidates": ("relisten_spark.retrieval.candidates", True),
    "evaluate": ("relisten_spark.evaluation.evaluate", True),
    "score": ("relisten_spark.scoring.score", True),
    "vacuum": ("relisten_spark.housekeeping", False),
    "backtest": ("relisten_spark.evaluation.backtest", True),
}
COMMANDS = [*STAGES, "pipeline"]
# commands whose rerun with unchanged inputs and config is a no-op unless --force
FORCEABLE = ("ingest", "features", "pipeline")

# every Spark command's session and lake
_SESSION = "spark.*, lake.root"


@dataclass(frozen=True)
class CommandDoc:
    """What ``relisten <command> --help`` says: the command's job, its inputs and outputs, and
    the config keys that matter to it (``relisten config show`` describes each key)."""

    summary: str
    reads: str
    writes: str
    keys: str

    def text(self) -> str:
        """The help text: the summary, then one wrapped paragraph per field."""
        fields = [("reads:", self.reads), ("writes:", self.writes), ("config:", self.keys)]
        wrap = [textwrap.fill(v, 100, initial_indent=f"{k:<9}", subsequent_indent=" " * 9) for k, v in fields]
        return "\n".join([self.summary, "", *wrap])


DOCS: dict[str, CommandDoc] = {
    "generate": CommandDoc(
        "Generate the calibrated synthetic KKBOX dataset.",
        "config",
        "data.raw_dir: members, songs, song_extra_info, train, test CSVs + truth.csv",
        "data.raw_dir, data.synthetic.* (users, songs, events, seed, test_fraction)",
    ),
    "ingest": CommandDoc(
        "Load the KKBOX CSVs (or, with data.source interactions, a user-item log) into the bronze "
        "Delta tables; malformed rows go to quarantine.",
        "the KKBOX CSVs in data.raw_dir, or data.interactions.path (and items_path)",
        "bronze.events, members, songs, song_extra, quarantine",
        f"data.source, data.raw_dir, data.encoding, data.allow_empty, data.interactions.*, {_SESSION}",
    ),
    "features": CommandDoc(
        "Build the feature table of one profile (full: the thesis's; serving: point-in-time).",
        "bronze",
        "silver.features, silver.feature_manifest, the five SVD tables and silver.label_codes, "
        "each in its profile partition",
        f"features.* (profile, windows, svd_*), evaluation.* (the serving profile's cutoff), {_SESSION}",
    ),
    "train-gbdt": CommandDoc(
        "Train LightGBM on Spark barrier tasks and score the holdout.",
        "silver.features, silver.feature_manifest",
        "models/lightgbm/<version>/, gold.predictions (model lightgbm)",
        f"gbdt.* (preset, profile, num_tasks, params, ...), evaluation.*, models.root, {_SESSION}",
    ),
    "train-nets": CommandDoc(
        "Train JENN and F-ELU-Net with PyTorch DDP (TorchDistributor) and score the holdout.",
        "silver.features, silver.feature_manifest",
        "models/jenn/..., models/felu_net/..., gold.predictions; the standardised input shards "
        "live only for the run under <models.root>/.nets-work/<run id>/",
        f"nets.* (models, preset, profile, num_processes, use_gpu, ...), evaluation.*, models.root, "
        f"{_SESSION}",
    ),
    "train-stack": CommandDoc(
        "Fit the logistic-regression stack on the base models' calib logits.",
        "gold.predictions, the base models' registry folders",
        "models/stack/<version>/, gold.predictions (model stack)",
        f"stack.* (models, profile, C, max_calib_rows, ...), scoring.profile, models.root, {_SESSION}",
    ),
    "train-retriever": CommandDoc(
        "Train the transformer retriever (next-item, DDP via TorchDistributor) and evaluate it and the "
        "baselines by full ranking.",
        "bronze.events, bronze.songs",
        "models/retriever/<version>/ (retriever.pt, items.parquet, vocab.json), gold.metrics (model "
        "retriever and the baselines); the sequences live only for the run under "
        "<models.root>/.retriever-work/<run id>/",
        f"retriever.* (loss, max_len, epochs, batch_size, num_processes, use_gpu, ...), evaluation.*, "
        f"models.root, {_SESSION}",
    ),
    "finetune-retriever": CommandDoc(
        "Fine-tune the latest stage-1 retriever on the ranker's scores (stage 2: pairwise logit "
        "loss over its top-M lists as of the holdout cutoff) and measure both stages' agreement.",
        "bronze.*, the latest stage-1 retriever, the serving stack and its base models, the serving "
        "feature tables (as of the holdout cutoff)",
        "silver.retriever_teacher, models/retriever/<version>/ (stage 2, with its parent and stack "
        "versions), gold.metrics (models retriever:stage1 and retriever:stage2)",
        f"retriever.finetune.* (users, candidates, margin, softmax_weight, ...), retriever.num_processes, "
        f"scoring.profile, evaluation.*, models.root, {_SESSION}",
    ),
    "candidates": CommandDoc(
        "Every user's scoring.candidates candidate songs from the retriever, SVD, ALS and popular "
        "sources (exact blocked top-K), mixed by quota.",
        "bronze.events, bronze.songs, the latest retriever, the SVD tables (serving) for the svd source",
        "silver.candidates (the run_date partition)",
        f"scoring.* (candidate_sources, candidates, run_date, block_size, surfaces.*.exclude_heard), "
        f"retriever.max_len, models.root, {_SESSION}",
    ),
    "evaluate": CommandDoc(
        "Train the popularity baseline, compute every model's metrics, write the HTML report.",
        "gold.predictions, silver.features (for the baseline), registry metadata",
        "gold.predictions (model popularity), gold.metrics, gold/report_<run id>.html",
        f"evaluation.*, data.raw_dir (truth.csv where present), models.root, {_SESSION}",
    ),
    "score": CommandDoc(
        "Write every user's top-N songs for each product surface, with reasons.",
        "bronze, silver.features (serving), silver.candidates (else the SVD tables), silver.label_codes "
        "(serving), the models",
        "gold.recs_story, gold.recs_shopping",
        f"scoring.* (top_n, candidates, run_date, reasons, surfaces.*), models.root, {_SESSION}",
    ),
    "backtest": CommandDoc(
        "Top-N lists as of the holdout cutoff against the eval period (HitRate, Recall, NDCG, MRR), "
        "beyond-accuracy measures of those lists and of the production lists, lever trade-offs.",
        "bronze, silver.features (serving), the SVD tables and silver.label_codes (serving), the models, "
        "gold.recs_<surface> (the latest run_date), the retrievers of evaluation.funnel_sources",
        "gold.metrics (its topn:<surface>[:<setting>] and funnel:<surface>:<source> rows; the other rows "
        "stay)",
        f"scoring.* (surfaces.*: top_n, max_per_artist, popularity_penalty, mmr_*), evaluation.*, "
        f"models.root, {_SESSION}",
    ),
    "vacuum": CommandDoc(
        "Delta VACUUM of every lake table: delete files older than lake.retention_hours that no kept "
        "version needs, and dead writers' staging folders (--dry-run lists them).",
        "every table of lake.root",
        "nothing but deletions",
        "lake.root, lake.retention_hours",
    ),
    "pipeline": CommandDoc(
        "Run every configured stage in order; feature and training stages once per profile.",
        "what each stage reads",
        "what each stage writes",
        "pipeline.* (stages, profiles, generate) and every stage's keys",
    ),
    "config": CommandDoc(
        "Show the effective config (defaults, then --conf, then --set) with each key's description.",
        "--conf FILE",
        "nothing (the YAML goes to stdout; it loads back as a config file)",
        "every key",
    ),
}
_RUNS = "It also writes one row of gold.runs per stage run. "


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like the engine's own errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common(defaults: bool) -> _Parser:
    """The options every command takes: --conf, --set, -v. Given before the command too (as
    ``relisten --conf FILE ingest``), so the command's copies carry no defaults of their own."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    common = _Parser(add_help=False)
    common.add_argument("--conf", default=default(None), help="YAML config (default: built-in defaults)")
    common.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=default([]),
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set scoring.top_n=10 (repeatable)",
    )
    common.add_argument("-v", "--verbose", action="store_true", default=default(False), help="debug logging")
    return common


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="relisten",
        description="relisten_spark batch engine commands; `relisten <command> --help` for each.",
        parents=[_common(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {relisten_spark.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    common = [_common(defaults=False)]
    raw = argparse.RawDescriptionHelpFormatter
    for name in COMMANDS:
        doc = DOCS[name]
        spark = name == "pipeline" or STAGES[name][1]
        epilog = f"{_RUNS if spark else ''}`relisten config show` describes every key."
        sub = commands.add_parser(
            name, help=doc.summary, description=doc.text(), epilog=epilog, parents=common, formatter_class=raw
        )
        if name in FORCEABLE:
            sub.add_argument(
                "--force", action="store_true", help="rebuild although inputs and config are unchanged"
            )
        if name == "vacuum":
            sub.add_argument("--dry-run", action="store_true", help="list the files it would delete")
    doc = DOCS["config"]
    config = commands.add_parser("config", help=doc.summary, description=doc.text(), formatter_class=raw)
    actions = config.add_subparsers(dest="action", required=True, metavar="<action>")
    actions.add_parser("show", help=doc.summary, description=doc.text(), parents=common, formatter_class=raw)
    return parser


def _stage_fn(command: str) -> Callable[..., dict[str, Any]]:
    module = importlib.import_module(STAGES[command][0])
    return module.run


def java_release(version_output: str) -> tuple[str, str]:
    """``(major, line)`` from ``java -version``'s output: the line that names the version (a JVM
    prints ``Picked up JAVA_TOOL_OPTIONS: ...`` and ``_JAVA_OPTIONS`` lines before it); ``("",
    first line)`` when no line does."""
    lines = version_output.splitlines()
    for line in lines:
        if ' version "' in line:
            return line.split('"')[1].split(".")[0], line
    return "", lines[0] if lines else ""


def check_java() -> None:
    """Spark needs Java 17 or 21; stop with one line saying how to get it."""
    if shutil.which("java") is None:
        raise RelistenError(
            "Java not found: install Java 17 (e.g. `apt-get install openjdk-17-jre-headless`)"
        )
    out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr
    major, line = java_release(out)
    if major not in {"17", "21"}:
        raise RelistenError(f"Spark 4 needs Java 17 or 21, found: {line or 'unknown'} (install openjdk-17)")


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
    if not cfg.pipeline.generate or cfg.data.source != "synthetic":
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
        preflight.check_lake(stage, step_cfg)  # first: a lake that cannot be written records nothing
        if needs_spark and spark is None:
            check_java()
            from relisten_spark.runtime import use_checkpoint_dir
            from relisten_spark.session import build_session

            spark = build_session(cfg.spark)
            use_checkpoint_dir(spark, cfg.lake.root)
        label = (
            stage
            if stage not in PROFILE_KEYS
            else f"{stage} [{getattr(step_cfg, PROFILE_KEYS[stage]).profile}]"
        )
        log.info("stage %s: starting", label)
        started, clock = datetime.now(UTC), time.perf_counter()
        fn = _stage_fn(stage)
        from relisten_spark.runtime import heartbeat  # lazily: it loads pyspark

        try:
            preflight.check_models(stage, step_cfg)
            with heartbeat(f"stage {label}"):  # a line every 20 s while the stage runs
                summary = (fn(spark, step_cfg) if needs_spark else fn(step_cfg)) or {}
        except Exception as exc:
            if spark is not None:
                _record(spark, step_cfg, stage, started, "failed", f"{type(exc).__name__}: {exc}"[:2000], {})
            raise
        if spark is not None:
            status = "skipped" if summary.get("skipped") else "succeeded"
            _record(spark, step_cfg, stage, started, status, str(summary.get("skipped") or ""), summary)
        elapsed = time.perf_counter() - clock  # the gold.runs row included: the stage's whole wall time
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


def summary_rows(results: Sequence[tuple[str, dict[str, Any], float]]) -> list[tuple[str, str, str]]:
    """``(stage, key, value as text)`` per summary entry, plus each stage's seconds: what the
    notebooks ``display()``.

    >>> summary_rows([("ingest", {"rows": {"events": 3}, "run_id": "r1"}, 1.25)])
    [('ingest', 'rows', '{"events": 3}'), ('ingest', 'run_id', 'r1'), ('ingest', 'seconds', '1.2')]
    """
    rows = []
    for stage, summary, elapsed in results:
        for key, value in summary.items():
            rows.append((stage, key, value if isinstance(value, str) else json.dumps(value, default=str)))
        rows.append((stage, "seconds", f"{elapsed:.1f}"))
    return rows


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


def _show_config(args: argparse.Namespace) -> int:
    """``relisten config show``: the effective config as commented YAML."""
    try:
        cfg = load_config(args.conf, args.overrides)
    except RelistenError as exc:
        print(f"relisten config {args.action}: error: {exc}", file=sys.stderr)
        return 2
    print(commented_yaml(cfg), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config":
        return _show_config(args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        check_versions()  # one line and exit 2 on an unsupported pyspark or Python
        cfg = load_config(args.conf, args.overrides)
        from relisten_spark.runs import RunFlags, using_flags  # lazily: it loads pyspark

        switches = RunFlags(getattr(args, "force", False), getattr(args, "dry_run", False))
        with using_flags(switches):
            results = run_command(args.command, cfg)
    except Exception as exc:
        error = preflight.input_error(exc)  # a RelistenError, or an input cause escaped from Spark
        if error is None:
            raise
        print(f"relisten {args.command}: error: {error}", file=sys.stderr)
        return 2
    print(format_summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
