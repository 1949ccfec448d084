"""relisten_spark: hybrid music recommendation as a batch scoring engine on Apache Spark."""

from importlib.metadata import PackageNotFoundError, version

# setup.py holds the version; the installed package's metadata is read back from it
try:
    __version__ = version("relisten_spark")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
