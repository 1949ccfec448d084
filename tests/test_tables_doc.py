"""TABLES.md is generated from schemas.py and current; every table's description and column
comments reach its Delta metadata; every commit carries its run's id and command; the reading
examples of TABLES.md run."""

from __future__ import annotations

import importlib.util
import json
import re
from datetime import date
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import types as T

from relisten_spark import lake, runs, schemas, tables_doc

ROOT = Path(__file__).resolve().parents[1]
# schemas that are not tables of their own
NOT_TABLES = {"REASON"}


def test_tables_md_is_current() -> None:
    committed = (ROOT / "TABLES.md").read_text(encoding="utf-8")
    assert committed == tables_doc.render(), "TABLES.md is stale: run `python -m relisten_spark.tables_doc`"


def test_every_table_schema_is_documented_column_by_column() -> None:
    documented = {id(doc.schema) for doc in schemas.TABLES if doc.schema is not None}
    structs = {n for n, v in vars(schemas).items() if isinstance(v, T.StructType) and n.isupper()}
    assert {n for n in structs - NOT_TABLES if id(getattr(schemas, n)) not in documented} == set()
    for doc in schemas.TABLES:
        assert doc.description.strip(), doc.name
        if doc.schema is not None:
            assert [c for c in doc.schema.fieldNames() if not doc.comment(c)] == [], doc.name
            assert set(doc.columns) <= set(doc.schema.fieldNames()), doc.name


def test_table_doc_finds_a_table_by_its_path() -> None:
    assert schemas.table_doc("lake/bronze/events").name == "bronze.events"  # type: ignore[union-attr]
    assert schemas.table_doc("lake/gold/_commits").name == "{layer}._commits"  # type: ignore[union-attr]
    assert schemas.table_doc("lake/gold/recs_x_enriched").name == "gold.recs_{surface}_enriched"  # type: ignore[union-attr]
    assert schemas.table_doc("lake/gold/scratch") is None


def _recs(spark, tmp_lake, run_dates: list[str]) -> str:
    path = lake.table_path(tmp_lake.lake.root, "gold", "recs_story")
    rows = [
        (date.fromisoformat(d), f"u{u}", r, f"s{u}{r}", 1.0 / r, "v1", [("pop", "popular", 0.5)])
        for d in run_dates
        for u in range(2)
        for r in (1, 2)
    ]
    for day in run_dates:
        df = spark.createDataFrame([row for row in rows if row[0].isoformat() == day], schemas.RECS)
        lake.write(spark, df, path, partition_by=["run_date"], replace_where={"run_date": day})
    return path


@pytest.mark.spark
def test_writes_carry_descriptions_comments_and_run_metadata(spark, tmp_lake) -> None:
    run_id = runs.new_run_id("score")
    path = _recs(spark, tmp_lake, ["2026-11-22", "2026-11-23"])

    table = DeltaTable(path)
    assert table.metadata().description == schemas.table_doc(path).description  # type: ignore[union-attr]
    fields = json.loads(table.schema().to_json())["fields"]
    comments = {f["name"]: f["metadata"].get("comment") for f in fields}
    assert comments["rank"] == "the song's rank in the member's list (1 = best)"
    assert all(comments.values()), comments
    assert {f["name"]: f["type"] for f in fields}["run_date"] == "date"
    assert lake.read(spark, path).schema["run_date"].dataType == T.DateType()
    for commit in table.history():  # the create and the second date's partition replace
        assert (commit.get("run_id"), commit.get("command")) == (run_id, "score")

    other = lake.table_path(tmp_lake.lake.root, "gold", "scratch")
    lake.write(spark, spark.range(2), other)
    assert DeltaTable(other).metadata().description is None  # undocumented: no description


def _examples() -> list[tuple[str, str]]:
    """``(reader, code)`` of the reading examples of TABLES.md, the ``path = ...`` block left out."""
    text = (ROOT / "TABLES.md").read_text(encoding="utf-8")
    section = text.split("## Reading the recommendations", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"\n([^\n]*?)[:(][^\n]*\n(?:[^\n]*\n)*?\n```python\n(.*?)```", section, flags=re.S)
    return [(reader.split()[0], code) for reader, code in blocks if not code.startswith("path =")]


def test_tables_md_shows_four_readers() -> None:
    assert [reader for reader, _ in _examples()] == ["Spark", "deltalake", "DuckDB", "polars"]


@pytest.mark.spark
@pytest.mark.parametrize("reader", ["Spark", "deltalake", "DuckDB", "polars"])
def test_tables_md_reading_examples_run(spark, tmp_lake, reader, capsys) -> None:
    module = {"DuckDB": "duckdb", "polars": "polars"}.get(reader)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (an optional reader, not a requirement of the engine)")
    path = _recs(spark, tmp_lake, ["2026-11-22", "2026-11-23"])
    code = dict(_examples())[reader]
    exec(compile(code, f"TABLES.md[{reader}]", "exec"), {"spark": spark, "path": path})
    out = capsys.readouterr().out
    assert "s01" in out  # the latest date's first member's top song
