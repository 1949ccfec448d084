"""relisten_spark: hybrid music recommendation as a batch scoring engine on Apache Spark."""

__version__ = "0.1.0"
