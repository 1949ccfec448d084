"""The saved label encoders (silver.label_codes): what scoring reads back encodes as the fitted
encoders do, an encoder without values included; a missing table names the command to run."""

from __future__ import annotations

import pytest
from pyspark.testing import assertDataFrameEqual

from relisten_spark import lake, schemas
from relisten_spark.errors import InputError
from relisten_spark.features import encode, label_codes

pytestmark = pytest.mark.spark


def test_saved_codes_encode_as_the_fitted_ones(spark, tmp_path) -> None:
    values = spark.createDataFrame([("b", 7), ("a", 3), (None, 3), ("b", None)], "tab string, city int")
    fitted = {
        "tab": encode.fit_codes(values, "tab"),
        "city": encode.fit_codes(values, "city"),
        "empty": encode.fit_codes(values.where("tab = 'z'"), "tab"),
    }
    frame = label_codes.codes_frame(spark, fitted, "serving")
    assert frame.schema == schemas.LABEL_CODES
    path = lake.table_path(str(tmp_path), "silver", label_codes.TABLE)
    lake.write(spark, frame, path, partition_by=["profile"], replace_where={"profile": "serving"})

    saved = label_codes.read_codes(spark, str(tmp_path), "serving")
    assert {name: codes.size for name, codes in saved.items()} == {"tab": 2, "city": 2, "empty": 0}
    probe = spark.createDataFrame(
        [(0, "a", 3), (1, "b", 7), (2, "c", 9), (3, None, None)], "i int, tab string, city int"
    )
    for name, column in (("tab", "tab"), ("city", "city"), ("empty", "tab")):
        got = encode.apply_codes(probe, saved[name], column, "code").select("i", "code")
        want = encode.apply_codes(probe, fitted[name], column, "code").select("i", "code")
        assertDataFrameEqual(got, want)


def test_a_missing_table_names_the_command(spark, tmp_path) -> None:
    with pytest.raises(
        InputError, match=r"label_codes not found: run `relisten features --set features\.profile=serving`"
    ):
        label_codes.read_codes(spark, str(tmp_path), "serving")
