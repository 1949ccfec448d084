"""TABLES.md, generated from :data:`schemas.TABLES`: every table's description, partitions and
columns (type and comment), and how to read the recommendations with Spark, deltalake, DuckDB
and polars.

``python -m relisten_spark.tables_doc [FILE]`` writes it (default ``TABLES.md``);
``tests/test_tables_doc.py`` checks that the committed file is current.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from relisten_spark.schemas import TABLES, TableDoc

HEADER = """\
# Tables

<!-- generated from relisten_spark/schemas.py by `python -m relisten_spark.tables_doc`: edit the
descriptions there, not here -->

Every table is a Delta table at `<lake.root>/<layer>/<table>`. Its description and its columns'
comments below are also in the table's own metadata (written when the table is created), and
every commit carries the `run_id` and `command` of the run that wrote it in its custom metadata
(`DESCRIBE HISTORY`, or `DeltaTable(path).history()`). `{surface}` stands for each product
surface of `scoring.surfaces` (`story`, `shopping`).

## Reading the recommendations

The latest run date of `gold.recs_story`, from four readers (`path` is the table's folder):

```python
path = "lakehouse/gold/recs_story"
```

Spark (the engine's reader: `format("delta")` where delta-spark is on the session, as on
Databricks, where `spark.read.format("delta").load(path)` does the same; the Delta log through
`deltalake` otherwise):

```python
from pyspark.sql import functions as F
from relisten_spark import lake

recs = lake.read(spark, path)
latest = recs.agg(F.max("run_date")).first()[0]
top = recs.where(F.col("run_date") == latest).orderBy("msno", "rank")
top.show(5)
```

deltalake (no Spark; the partition filter prunes files):

```python
from deltalake import DeltaTable

table = DeltaTable(path)
latest = max(table.partitions(), key=lambda p: p["run_date"])["run_date"]
frame = table.to_pandas(partitions=[("run_date", "=", latest)])
print(frame.sort_values(["msno", "rank"])[["msno", "rank", "song_id", "score"]].head())
```

DuckDB (over the table's current files, as deltalake lists them; DuckDB's `delta` extension
reads the path directly with `delta_scan(path)` where it can be installed):

```python
import duckdb
from deltalake import DeltaTable

recs = DeltaTable(path).to_pyarrow_dataset()
print(duckdb.sql(
    "SELECT msno, rank, song_id, score FROM recs "
    "WHERE run_date = (SELECT max(run_date) FROM recs) ORDER BY msno, rank LIMIT 5"
))
```

polars:

```python
import polars as pl

recs = pl.scan_delta(path)
latest = recs.select(pl.col("run_date").max()).collect().item()
print(recs.filter(pl.col("run_date") == latest).sort("msno", "rank").head(5).collect())
```
"""


def _table(doc: TableDoc) -> list[str]:
    lines = [f"### {doc.name}", "", doc.description, ""]
    if doc.partition_by:
        lines += [f"Partitioned by {', '.join(f'`{c}`' for c in doc.partition_by)}.", ""]
    lines += ["| column | type | description |", "|---|---|---|"]
    if doc.schema is not None:
        rows = [(f.name, f.dataType.simpleString(), doc.comment(f.name) or "") for f in doc.schema.fields]
    else:
        rows = [(name, "", comment) for name, comment in doc.columns.items()]
        rows.append(("...", "", "the factor columns"))
    cells = [(name, dtype and f"`{dtype}`", comment.replace("|", "\\|")) for name, dtype, comment in rows]
    lines += [f"| `{name}` | {dtype} | {comment} |" for name, dtype, comment in cells]
    return [*lines, ""]


def render() -> str:
    """The whole of TABLES.md."""
    lines = [HEADER, "## The tables", ""]
    for layer in ("bronze", "silver", "gold", "{layer}"):
        for doc in TABLES:
            if doc.name.split(".")[0] == layer:
                lines += _table(doc)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    target = args[0] if args else "TABLES.md"
    with open(target, "w", encoding="utf-8") as out:
        out.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
