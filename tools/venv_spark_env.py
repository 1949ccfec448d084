"""Let ``<venv>/bin/spark-submit`` run without activating the venv (``make install`` calls this).

pyspark's launcher sources ``<venv>/bin/find-spark-home``, which runs ``find_spark_home.py`` with
``$PYSPARK_DRIVER_PYTHON`` or else the ``python3`` on PATH; outside the venv that interpreter
does not see pyspark, SPARK_HOME stays empty and spark-submit fails with
``/bin/spark-class: No such file or directory``. This prepends defaults (each kept when the
caller sets it) naming the venv's Python for the launcher, the driver and the workers, and the
project's ``conf/`` as SPARK_CONF_DIR, so the JVM picks up ``conf/log4j2.properties`` (quiet
Spark logs). Idempotent: the block is replaced on a rerun.

Usage: ``python tools/venv_spark_env.py <venv> <conf dir>``
"""

from __future__ import annotations

import sys
from pathlib import Path

BEGIN = "# >>> relisten_spark (make install): this venv's Python and the project's Spark conf"
END = "# <<< relisten_spark"


def block(python: Path, conf: Path) -> str:
    lines = [
        BEGIN,
        f'export PYSPARK_PYTHON="${{PYSPARK_PYTHON:-{python}}}"',
        f'export PYSPARK_DRIVER_PYTHON="${{PYSPARK_DRIVER_PYTHON:-{python}}}"',
        f'export SPARK_CONF_DIR="${{SPARK_CONF_DIR:-{conf}}}"',
        END,
    ]
    return "\n".join(lines) + "\n"


def without_block(text: str) -> str:
    if BEGIN not in text:
        return text
    head, rest = text.split(BEGIN, 1)
    return head + rest.split(END + "\n", 1)[1]


def main(venv: str, conf: str) -> None:
    script = Path(venv) / "bin" / "find-spark-home"
    python = (Path(venv) / "bin" / "python").absolute()
    text = without_block(script.read_text(encoding="utf-8"))
    shebang, _, body = text.partition("\n")
    script.write_text(f"{shebang}\n{block(python, Path(conf).absolute())}{body}", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
