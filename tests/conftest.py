"""Shared fixtures: one local Spark session for the whole run, a throw-away lake."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relisten_spark.config import Config, load_config

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
KKBOX_SAMPLE = SHARED / "data" / "kkbox-sample"
KKBOX_HEADERS = {  # the header line of each KKBOX file, as the competition ships them
    "train.csv": "msno,song_id,source_system_tab,source_screen_name,source_type,target",
    "test.csv": "id,msno,song_id,source_system_tab,source_screen_name,source_type",
    "members.csv": "msno,city,bd,gender,registered_via,registration_init_time,expiration_date",
    "songs.csv": "song_id,song_length,genre_ids,artist_name,composer,lyricist,language",
    "song_extra_info.csv": "song_id,name,isrc",
}
ML100K = SHARED / "data" / "ml-100k"  # MovieLens-100k in RecBole's atomic files


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """local[2] session bound to 127.0.0.1, 2 shuffle partitions, UI off, ERROR logs."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from relisten_spark.session import build_session

    cfg = load_config(None, ["spark.master=local[2]", "spark.shuffle_partitions=2", "spark.driver_memory=2g"])
    session = build_session(cfg.spark)
    yield session
    session.stop()


@pytest.fixture
def tmp_lake(tmp_path: Path) -> Config:
    """A default Config whose lake, models and raw data live under ``tmp_path``."""
    return load_config(
        None,
        [
            "spark.master=local[2]",
            f"lake.root={tmp_path / 'lake'}",
            f"models.root={tmp_path / 'models'}",
            f"data.raw_dir={tmp_path / 'raw'}",
            "tracking.enabled=false",
        ],
    )
