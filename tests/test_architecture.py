"""The house rules that code review alone would let slip: stages import only what lies below
them, evaluation is a consumer, and tests do not read data outside the repository.

Every module under relisten_spark/ is parsed (imports inside functions included; a string that
names a relisten_spark module, as ``importlib.import_module`` takes it, counts as an import).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "relisten_spark"
TESTS = ROOT / "tests"

BASE = (
    "errors",
    "config",
    "schemas",
    "lake",
    "lake_files",
    "lake_log",
    "commits",
    "housekeeping",
    "session",
    "runs",
    "splits",
    "metrics",
    "predictions",
    "runtime",
    "preflight",
    "topn",
    "beyond_accuracy",
    "tracking",
    "compat",
    "tables_doc",
)
# bottom to top; a module may import modules of its own layer or of a lower one
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("", *BASE)),  # "" is the package's own __init__
    ("data", ("data",)),
    ("features", ("features",)),
    ("models", ("models",)),
    ("retrieval", ("retrieval",)),
    ("scoring", ("scoring",)),
    ("evaluation", ("evaluation",)),
    ("entry points", ("cli", "__main__", "notebook")),  # notebook: the Databricks notebooks' helpers
]
LAYER_OF = {part: (rank, name) for rank, (name, parts) in enumerate(LAYERS) for part in parts}
MODULE_NAME = re.compile(r"relisten_spark(\.\w+)+")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> tuple[int, str]:
    """``(rank, layer name)`` of a relisten_spark module, by the first name below the package."""
    top = module.split(".")[1] if "." in module else ""
    if top not in LAYER_OF:
        raise AssertionError(f"{module} belongs to no layer: add '{top}' to LAYERS in {Path(__file__).name}")
    return LAYER_OF[top]


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, imported relisten_spark module)`` of every import in the file, at any depth."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from relisten_spark.x import y` may import the module relisten_spark.x.y
            yield from ((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MODULE_NAME.fullmatch(node.value)
        ):
            yield node.lineno, node.value


def package_imports() -> Iterator[tuple[str, str, int, str]]:
    """``(file, importer, line, imported)`` for every relisten_spark import in the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        for line, imported in imports(path):
            if imported == "relisten_spark" or imported.startswith("relisten_spark."):
                yield str(path.relative_to(ROOT)), importer, line, imported


def test_every_module_belongs_to_a_layer():
    for path in PACKAGE.rglob("*.py"):
        layer(module_name(path))


def test_stages_import_only_their_own_layer_or_lower():
    broken = []
    for file, importer, line, imported in package_imports():
        (own, own_name), (other, other_name) = layer(importer), layer(imported)
        if other > own:
            broken.append(
                f"{file}:{line}: {importer} ({own_name}) imports {imported} ({other_name}, above it)"
            )
    assert not broken, "stages may import only their own layer or a lower one:\n" + "\n".join(broken)


def test_only_the_cli_imports_evaluation():
    broken = [
        f"{file}:{line}: {importer} imports {imported}"
        for file, importer, line, imported in package_imports()
        if imported.startswith("relisten_spark.evaluation")
        and importer != "relisten_spark.cli"
        and not importer.startswith("relisten_spark.evaluation")
    ]
    assert not broken, "evaluation is a consumer: only relisten_spark.cli may import it:\n" + "\n".join(
        broken
    )


# ---- tests and data outside the repository ---------------------------------------------------------
SHARED_PATH = re.compile(r"(^|[/\\])shared([/\\]|$)")
REAL_DATA = {"KKBOX_SAMPLE", "ML100K"}  # conftest's paths of the real-data samples, outside the repository


def _skips_without_sample(node: ast.FunctionDef) -> bool:
    """True when ``node`` carries ``@pytest.mark.skipif(<condition on a REAL_DATA path>, reason=...)``."""
    for deco in node.decorator_list:
        if (
            isinstance(deco, ast.Call)
            and isinstance(deco.func, ast.Attribute)
            and deco.func.attr == "skipif"
            and any(isinstance(n, ast.Name) and n.id in REAL_DATA for a in deco.args for n in ast.walk(a))
            and any(k.arg == "reason" for k in deco.keywords)
        ):
            return True
    return False


def outside_reads(path: Path) -> Iterator[str]:
    """What in a test file names the folder outside the repository, or uses the real-data sample
    in a test that does not skip without it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    allowed: set[int] = set()  # ids of the nodes inside tests that skip without the sample
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and _skips_without_sample(node):
            allowed.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SHARED_PATH.search(node.value):
            yield f"line {node.lineno}: path {node.value!r}"
        elif isinstance(node, ast.Name) and node.id in REAL_DATA and id(node) not in allowed:
            yield f"line {node.lineno}: {node.id} used by a test that does not skip without it"


def test_tests_read_no_data_outside_the_repository():
    """Only conftest.py names the real-data folder; the tests that use its sample skip with a
    reason when it is absent."""
    broken = [
        f"{path.relative_to(ROOT)} {problem}"
        for path in sorted(TESTS.rglob("*.py"))
        if path.name != "conftest.py"
        for problem in outside_reads(path)
    ]
    assert not broken, "tests read data outside the repository:\n" + "\n".join(broken)
