"""What the Databricks notebooks (``notebooks/NN_*.py``) share: the text widgets that set a path
or date of the config, and the config their values make. ``widgets`` is the Databricks runtime's
``dbutils.widgets``; a notebook defines its choice widgets (dropdowns) itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from relisten_spark.config import Config, load_config

CONF = "conf"  # the widget naming the config file
DEFAULT_CONF = "../conf/databricks.yaml"
# text widget -> (the config key a non-empty value sets, the widget's label); every notebook has
# ``conf`` and ``lake_root``
TEXT_WIDGETS = {
    "lake_root": ("lake.root", "lake.root (empty: the config's)"),
    "models_root": ("models.root", "models.root (empty: the config's)"),
    "raw_dir": ("data.raw_dir", "data.raw_dir (empty: the config's)"),
    "run_date": ("scoring.run_date", "scoring.run_date, YYYY-MM-DD (empty: today, UTC)"),
}


class Widgets(Protocol):
    """The part of ``dbutils.widgets`` used here."""

    def text(self, name: str, default: str, label: str) -> None: ...

    def get(self, name: str) -> str: ...


def add_text_widgets(widgets: Widgets, *names: str) -> None:
    """Define ``conf`` (default :data:`DEFAULT_CONF`), ``lake_root`` and the text widgets ``names``
    of :data:`TEXT_WIDGETS`, empty."""
    widgets.text(CONF, DEFAULT_CONF, "config file")
    for name in dict.fromkeys(["lake_root", *names]):
        widgets.text(name, "", TEXT_WIDGETS[name][1])


def widget_config(widgets: Widgets, *names: str, overrides: Sequence[str] = ()) -> Config:
    """The config file of the ``conf`` widget with the key of each non-empty text widget of
    ``lake_root`` and ``names`` set to its value, then ``overrides`` (``key=value``)."""
    values = {name: widgets.get(name) for name in dict.fromkeys(["lake_root", *names])}
    sets = [f"{TEXT_WIDGETS[name][0]}={value}" for name, value in values.items() if value]
    return load_config(widgets.get(CONF), [*sets, *overrides])
